package run

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/internal/ctyx"
)

// applyInstance runs the attempts of one instance. It runs on a worker
// goroutine and touches only in (which the scheduler leaves alone until the
// done message) and thread-safe parts of e. It journals every attempt: the
// start durably before the plugin is called. The returned error is a
// *JournalError when the walk stopped, or the step's last error.
func (e *executor) applyInstance(ctx context.Context, in *Instance) error {
	n := e.byName[in.Step.Name]
	st := n.st
	defer func() { in.jin = nil }() // only the attempts' start records need it
	max := 1
	if st.Retry != nil && st.Retry.Attempts > 1 {
		max = st.Retry.Attempts
	}
	first := in.Attempt + 1
	in.Started = e.now()
	prov := e.provs[st.Plugin]
	plain, pvm := in.Inputs, []cty.PathValueMarks(nil)
	if ctyx.ContainsMarked(in.Inputs) { // (copying is costly; most inputs hold no marks)
		plain, pvm = in.Inputs.UnmarkDeepWithPaths()
	}
	var sensPaths []cty.Path
	for _, p := range pvm {
		if _, ok := p.Marks[lang.MarkSensitive]; ok {
			sensPaths = append(sensPaths, p.Path)
		}
	}
	action := st.Plugin + "." + st.Action
	for att := first; ; att++ {
		in.Attempt = att
		in.State = journal.StepRunning
		resumed := in.resumeAtt == att
		// The start is durable before the plugin acts (group commit
		// batches the starts of steps that begin together), so that a
		// rollback after a crash knows every step that may have acted.
		if err := e.transition(&journal.Record{Type: journal.RecAttemptStarted, Step: in.Address, Attempt: att, Inputs: in.jin}, extra{action: action}); err != nil {
			return err
		}
		req := &sdk.ApplyRequest{
			Inputs:         plain,
			IdempotencyKey: fmt.Sprintf("%s/%s/%d", e.opts.RunID, in.Address, att),
			Sensitive:      sensPaths,
		}
		if resumed {
			req.Checkpoint = in.checkpoint
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if st.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, st.Timeout)
		}
		evs := &stepEvents{e: e, addr: in.Address, attempt: att, secret: len(sensPaths) > 0}
		t0 := e.now()
		var res *sdk.Result
		err := e.stop.err()
		if err == nil {
			res, err = prov.Apply(actx, st.Action, req, evs)
		}
		timedOut := err != nil && actx.Err() == context.DeadlineExceeded && ctx.Err() == nil
		cancel()
		if serr := e.stop.err(); serr != nil {
			return serr // the journal failed: what the call did cannot be recorded
		}
		var undo []byte
		// The undo state is sealed when the plugin marks it or when the
		// step's inputs hold a secret (see blob).
		undoSecret := len(sensPaths) > 0
		undoMarked := false
		if res != nil {
			undo = res.UndoState
			undoMarked = res.SensitiveUndoState
		}
		if undo != nil {
			in.undoState = undo
		}
		var jout *journal.Value
		if err == nil {
			outs := cty.NilVal
			if res != nil {
				outs = res.Outputs
			}
			if outs == cty.NilVal {
				outs, _ = sdk.ConformOutputs(n.schema, cty.NilVal)
			}
			outs = e.taint(lang.MarkAttrs(n.schema.Outputs, outs))
			e.mask.AddValue(outs, lang.MarkSensitive)
			var jerr error
			if jout, jerr = journal.EncodeValue(outs, e.sealer(in.Address, fieldOutputs)); jerr != nil {
				// The step acted but its outputs cannot be stored: it
				// fails (its undo state is journaled for the rollback).
				err = sdk.Errorf(sdk.KindInvalid, false, "", "its outputs cannot be journaled: %s", clip(jerr.Error()))
			} else {
				in.Outputs = outs
			}
		}
		if err == nil {
			// The success is made durable by the next durable record
			// (group commit): a dependent's start, or the run's end.
			in.Ended = e.now()
			rec := &journal.Record{Type: journal.RecStepSucceeded, Step: in.Address, Attempt: att, Outputs: jout, UndoState: e.blobMarked(in.Address, fieldUndoState, undo, undoSecret, undoMarked)}
			if jerr := e.transition(rec, extra{duration: in.Ended.Sub(t0).Milliseconds(), outputs: e.rendered(in.Outputs), queued: true}); jerr != nil {
				return jerr
			}
			in.State = journal.StepSucceeded
			return nil
		}
		ce := sdk.Classify(err)
		kind, retryable := ce.Kind, ce.Retryable
		msg := errText(ce)
		if timedOut {
			kind, retryable = sdk.KindTimeout, true
			msg = fmt.Sprintf("timed out after %s: %s", st.Timeout, msg)
		}
		serr := &StepError{Address: in.Address, Kind: kind, Hint: e.mask.Mask(ce.Hint), Msg: e.mask.Mask(msg)}
		ei := &journal.ErrorInfo{Message: serr.Msg, Kind: string(kind), Hint: serr.Hint, Retryable: retryable}
		if ctx.Err() != nil {
			// Interrupted: the attempt stays in flight for resume.
			in.State = journal.StepCancelled
			in.Ended = e.now()
			return e.transition(&journal.Record{Type: journal.RecStepCancelled, Step: in.Address, Attempt: att, UndoState: e.blobMarked(in.Address, fieldUndoState, undo, undoSecret, undoMarked)}, extra{})
		}
		again := att < max && (retryable || (st.Retry != nil && st.Retry.AnyError))
		if again {
			d := retryDelay(st.Retry, att-first+1)
			rec := &journal.Record{Type: journal.RecAttemptFailed, Step: in.Address, Attempt: att, Error: ei, UndoState: e.blobMarked(in.Address, fieldUndoState, undo, undoSecret, undoMarked), Message: "retry"}
			if jerr := e.transition(rec, extra{delay: d.Milliseconds()}); jerr != nil {
				return jerr
			}
			if err := e.sleep(ctx, d); err != nil {
				if serr := e.stop.err(); serr != nil {
					return serr
				}
				// The next attempt never started; resume starts it.
				in.State = journal.StepCancelled
				in.Ended = e.now()
				return e.transition(&journal.Record{Type: journal.RecStepCancelled, Step: in.Address, Attempt: att}, extra{})
			}
			continue
		}
		in.State = journal.StepFailed
		in.Ended = e.now()
		rec := &journal.Record{Type: journal.RecStepFailed, Step: in.Address, Attempt: att, Error: ei, UndoState: e.blobMarked(in.Address, fieldUndoState, undo, undoSecret, undoMarked)}
		if jerr := e.transition(rec, extra{duration: in.Ended.Sub(in.Started).Milliseconds()}); jerr != nil {
			return jerr
		}
		return serr
	}
}

func (e *executor) sleep(ctx context.Context, d time.Duration) error {
	if e.opts.Sleep != nil {
		return e.opts.Sleep(ctx, d)
	}
	return backoff.Sleep(ctx, d)
}

// Retry defaults.
const (
	DefaultRetryDelay    = time.Second
	DefaultRetryMaxDelay = 5 * time.Minute
)

// retryDelay is the wait before retry number n (1-based): the delay for a
// fixed backoff; for an exponential one delay*2^(n-1), capped at
// max_delay, with "equal jitter" (a random half of it) so that many steps
// failing together do not retry in lockstep.
func retryDelay(r *lang.Retry, n int) time.Duration {
	p := backoff.Policy{Base: DefaultRetryDelay, Max: DefaultRetryMaxDelay}
	if r != nil {
		if r.Delay > 0 {
			p.Base = r.Delay
		}
		if r.MaxDelay > 0 {
			p.Max = r.MaxDelay
		}
		p.Fixed = r.Backoff == "fixed"
	}
	p.Jitter = !p.Fixed
	return p.Delay(n)
}

// stepEvents is the sdk.Events handed to one attempt or undo.
type stepEvents struct {
	e       *executor
	addr    string
	attempt int
	undo    bool
	secret  bool // the step's inputs hold a secret: seal checkpoints
}

var _ sdk.Events = (*stepEvents)(nil)

func (s *stepEvents) Log(level sdk.Level, msg string) {
	s.e.emit(event.Event{Type: event.StepLog, Step: s.addr, Attempt: s.attempt, Level: level.String(), Message: msg})
}

func (s *stepEvents) Progress(cur, total int64, unit string) {
	s.e.emit(event.Event{Type: event.StepProgress, Step: s.addr, Attempt: s.attempt, Current: cur, Total: total, Unit: unit})
}

// Checkpoint journals data durably before it returns, during an undo as
// during an attempt. A journal failure stops the walk (which cancels the
// call) and is returned to the plugin.
func (s *stepEvents) Checkpoint(data []byte) error { return s.checkpoint(data, false) }

// CheckpointSensitive journals a checkpoint the plugin marked as holding
// a secret: sealed, or not stored without a state key.
func (s *stepEvents) CheckpointSensitive(data []byte) error { return s.checkpoint(data, true) }

func (s *stepEvents) checkpoint(data []byte, marked bool) error {
	typ := journal.RecCheckpoint
	if s.undo {
		typ = journal.RecUndoCheckpoint
	}
	b := append([]byte(nil), data...)
	if err := s.e.transition(&journal.Record{Type: typ, Step: s.addr, Attempt: s.attempt, Checkpoint: s.e.blobMarked(s.addr, fieldCheckpoint, b, s.secret, marked)}, extra{}); err != nil {
		return fmt.Errorf("journal checkpoint: %w", err)
	}
	return nil
}

// errText is the message of a classified error without its kind prefix
// (StepError adds the kind itself).
func errText(ce *sdk.Error) string {
	if ce.Err != nil {
		return ce.Err.Error()
	}
	return ce.Error()
}

// rendered is outs for a step_succeeded event: nil when the sink does not
// show outputs (rendering every step's outputs for nothing showed in the
// profile of large runs).
func (e *executor) rendered(outs cty.Value) map[string]any {
	if !e.showOutputs {
		return nil
	}
	return Render(outs)
}

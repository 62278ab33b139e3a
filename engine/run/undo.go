package run

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// needsUndo: the step declares a rollback, and the instance completed,
// failed (or was interrupted) leaving partial undo state, or was in flight
// when the run stopped (see inFlightUnknown).
func needsUndo(in *Instance) bool {
	return undoNeeded(in.Step.Rollback, in.State, in.undoState != nil, in.checkpoint != nil)
}

// NeedsUndo is needsUndo for a journaled instance of st, without an
// executor: what a rollback of the run will undo (the undo plan).
func NeedsUndo(st *lang.Step, js *journal.StepState) bool {
	return undoNeeded(st.Rollback, js.State, js.UndoState != nil, js.Checkpoint != nil)
}

func undoNeeded(rb *lang.Rollback, state string, undoState, checkpoint bool) bool {
	if rb == nil {
		return false
	}
	switch state {
	case journal.StepSucceeded, journal.StepUndoFailed, journal.StepUndoing:
		return true
	case journal.StepRunning:
		return !rb.Native || undoState || checkpoint
	case journal.StepFailed, journal.StepCancelled:
		return undoState
	}
	return false
}

// inFlightUnknown: the journal shows the instance started and never ended
// (the engine died), and nothing tells its native undo what it did: no
// undo state from an earlier attempt, no checkpoint.
func inFlightUnknown(in *Instance) bool {
	return in.State == journal.StepRunning && in.Step.Rollback != nil && in.Step.Rollback.Native &&
		in.undoState == nil && in.checkpoint == nil
}

// UnknownOutcomeError is returned by Rollback, before it undoes anything,
// when steps were in flight when the run stopped and their native undo
// would have nothing to go on.
type UnknownOutcomeError struct{ Steps []string }

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("cannot roll back: step %s was running when the run stopped and its outcome cannot be known "+
		"(no undo state or checkpoint was journaled); run `runbook resume` to finish it with the same idempotency key, "+
		"then roll back", strings.Join(e.Steps, ", "))
}

// rollback undoes every instance that needs it, in the undo order
// (graph.Undo of the step graph), through the one scheduler: within the
// parallelism and each action's MaxConcurrency. An undo failure blocks the
// undo of what the failed step depends on. It returns the final run state.
func (e *executor) rollback(ctx context.Context) (string, error) {
	if err := e.transition(&journal.Record{Type: journal.RecRunState, State: journal.RunRollingBack}, extra{}); err != nil {
		return "", err
	}
	e.undoBad = false
	g := e.graph.Undo(func(name string) bool { return e.byName[name].st.Rollback != nil })
	if err := e.walk(ctx, g, e.backward()); err != nil {
		return "", err
	}
	if e.undoBad || ctx.Err() != nil {
		return journal.RunRollbackFailed, nil
	}
	return journal.RunRolledBack, nil
}

// backward is the rollback's direction.
func (e *executor) backward() direction {
	return direction{
		ready:    e.readyUndo,
		work:     e.undoInstance,
		finished: e.undoFinished,
		settle: func(_ context.Context, n *node) {
			bad := n.blocked
			for _, in := range n.insts {
				if in.State == journal.StepUndoFailed {
					bad = n.st.Name
				}
			}
			for _, m := range n.next {
				if bad != "" && m.blocked == "" {
					m.blocked = bad
				}
			}
		},
		stopping: func(ctx context.Context) bool { return ctx.Err() != nil },
		keep:     func(context.Context, *Instance) bool { return false },
		drop: func(ctx context.Context, in *Instance) error {
			e.undoBad = true
			in.undoErr = ctx.Err()
			return e.instDone(ctx, in)
		},
	}
}

// readyUndo queues the undos of n's instances that need one.
func (e *executor) readyUndo(ctx context.Context, n *node) error {
	var todo []*Instance
	for _, in := range n.insts {
		if needsUndo(in) {
			todo = append(todo, in)
		}
	}
	if len(todo) == 0 {
		return e.nodeDone(ctx, n)
	}
	if n.blocked != "" {
		for _, in := range todo {
			e.undoBad = true
			e.emit(event.Event{Type: event.UndoSkipped, Step: in.Address, Message: fmt.Sprintf("not undone: the undo of %s, which depends on it, failed", n.blocked)})
		}
		return e.nodeDone(ctx, n)
	}
	if ctx.Err() != nil {
		e.undoBad = true
		return e.nodeDone(ctx, n)
	}
	n.open = len(todo)
	for _, in := range todo {
		in.capKey, in.cap = n.st.Plugin+"."+n.st.Action, n.schema.MaxConcurrency
		if !n.st.Rollback.Native {
			in.capKey, in.cap = n.st.Rollback.Plugin+"."+n.st.Rollback.Action, n.undoCap
		}
		v, err := e.undoInputs(n, in)
		if err != nil {
			if jerr := e.undoFailed(in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.maskErr(err)}); jerr != nil {
				return jerr
			}
			if err := e.undoFinished(ctx, in, nil); err != nil {
				return err
			}
			continue
		}
		in.undoInputs = v
		e.queue = append(e.queue, in)
	}
	return nil
}

// undoFinished handles an instance whose undo ended.
func (e *executor) undoFinished(ctx context.Context, in *Instance, _ error) error {
	if in.State != journal.StepUndone {
		e.undoBad = true
	}
	return e.instDone(ctx, in)
}

// undoInputs evaluates the inputs of the undo: the step's own inputs for a
// native undo, the rollback block's `with` otherwise.
func (e *executor) undoInputs(n *node, in *Instance) (cty.Value, error) {
	if n.st.Rollback.Native {
		return in.Inputs, nil
	}
	outs := in.Outputs
	if outs == cty.NilVal {
		outs = cty.NullVal(n.schema.OutputType())
	}
	ins := in.Inputs
	if ins == cty.NilVal {
		ins = cty.EmptyObjectVal
	}
	v, err := e.rb.Eval.RollbackInputs(n.st, in.Key, e.steps, ins, outs)
	if err != nil {
		return cty.NilVal, err
	}
	v = e.taint(v)
	e.mask.AddValue(v, lang.MarkSensitive)
	return v, nil
}

func (e *executor) undoFailed(in *Instance, serr *StepError) error {
	in.State = journal.StepUndoFailed
	in.undoErr = serr
	ei := &journal.ErrorInfo{Message: serr.Msg, Kind: string(serr.Kind), Hint: serr.Hint}
	return e.transition(&journal.Record{Type: journal.RecUndoFailed, Step: in.Address, Error: ei}, extra{})
}

// undoInstance runs the undo of one instance with the step's retry and
// timeout, on a worker goroutine. The returned error is a *JournalError
// when the walk stopped.
func (e *executor) undoInstance(ctx context.Context, in *Instance) error {
	st := in.Step
	inFlight := in.State == journal.StepRunning
	if err := e.transition(&journal.Record{Type: journal.RecUndoStarted, Step: in.Address}, extra{}); err != nil {
		return err
	}
	in.State = journal.StepUndoing
	max := 1
	if st.Retry != nil && st.Retry.Attempts > 1 {
		max = st.Retry.Attempts
	}
	plain, pvm := in.undoInputs.UnmarkDeepWithPaths()
	var sens []cty.Path
	for _, p := range pvm {
		if _, ok := p.Marks[lang.MarkSensitive]; ok {
			sens = append(sens, p.Path)
		}
	}
	outs, _ := in.Outputs.UnmarkDeep()
	t0 := e.now()
	if st.Rollback.Native && in.undoLost {
		return e.undoFailed(in, &StepError{Address: in.Address, Kind: sdk.KindInvalid,
			Msg:  "its undo state held a secret and was not journaled in clear",
			Hint: "set RUNBOOK_STATE_KEY (or RUNBOOK_STATE_KEY_FILE) to the key the run was made with, then run the rollback again"})
	}
	for att := 1; ; att++ {
		key := fmt.Sprintf("%s/%s/undo-%d", e.opts.RunID, in.Address, att)
		evs := &stepEvents{e: e, addr: in.Address, attempt: att, undo: true, secret: len(sens) > 0}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if st.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, st.Timeout)
		}
		err := e.stop.err()
		if err == nil && st.Rollback.Native {
			req := &sdk.UndoRequest{Inputs: plain, Outputs: outs, UndoState: in.undoState, IdempotencyKey: key, Force: e.opts.Force}
			if inFlight {
				// What the interrupted attempt checkpointed tells the
				// undo how far it got.
				req.Checkpoint = in.checkpoint
			}
			err = e.provs[st.Plugin].Undo(actx, st.Action, req, evs)
		} else if err == nil {
			_, err = e.provs[st.Rollback.Plugin].Apply(actx, st.Rollback.Action, &sdk.ApplyRequest{Inputs: plain, IdempotencyKey: key, Sensitive: sens}, evs)
		}
		cancel()
		if serr := e.stop.err(); serr != nil {
			return serr
		}
		if err == nil {
			in.State = journal.StepUndone
			return e.transition(&journal.Record{Type: journal.RecUndoSucceeded, Step: in.Address}, extra{duration: e.now().Sub(t0).Milliseconds()})
		}
		ce := sdk.Classify(err)
		serr := &StepError{Address: in.Address, Kind: ce.Kind, Hint: e.mask.Mask(ce.Hint), Msg: e.mask.Mask(errText(ce))}
		if ctx.Err() == nil && att < max && (ce.Retryable || (st.Retry != nil && st.Retry.AnyError)) {
			d := retryDelay(st.Retry, att)
			e.emit(event.Event{Type: event.StepRetry, Step: in.Address, Attempt: att, Error: serr.Msg, Kind: string(ce.Kind), DelayMS: d.Milliseconds(), Message: "undo"})
			if e.sleep(ctx, d) == nil {
				continue
			}
		}
		return e.undoFailed(in, serr)
	}
}

// Rollback undoes a run from its journal: every instance that completed
// (or failed with partial undo state, or whose undo failed before, or that
// was in flight when the run stopped) and is not undone yet, in the undo
// order. rb must be the runbook the run was made from (for rollback blocks
// and dependencies). It returns an *UnknownOutcomeError, undoing nothing,
// when an in-flight step's native undo would have nothing to go on, and a
// *JournalError when the journal failed.
func Rollback(ctx context.Context, rb *Runbook, opts Options, state *journal.State) (*Result, error) {
	start := time.Now()
	opts.Resume = nil
	e, err := newExecutor(ctx, rb, opts)
	if err != nil {
		return nil, err
	}
	defer close(e.quit)
	if err := e.loadInstances(state); err != nil {
		return nil, err
	}
	var unknown []string
	for _, in := range e.instances() {
		switch {
		case inFlightUnknown(in):
			unknown = append(unknown, in.Address)
		case in.State == journal.StepRunning && in.Step.Rollback == nil:
			e.emit(event.Event{Type: event.Warning, Step: in.Address,
				Message: "it was running when the run stopped and declares no rollback: whatever it did stays"})
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownOutcomeError{Steps: unknown}
	}
	st, err := e.rollback(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{State: st, Interrupted: ctx.Err() != nil}
	if err := e.end(ctx, res); err != nil {
		return nil, err
	}
	res.Instances, res.Duration = e.instances(), time.Since(start)
	for _, in := range res.Instances {
		if in.undoErr != nil && res.Err == nil {
			res.Err = in.undoErr
		}
	}
	return res, nil
}

// loadInstances rebuilds the instances of every step from the journal, in
// dependency order so that for_each expansions and rollback inputs see
// their dependencies' journaled values.
func (e *executor) loadInstances(state *journal.State) error {
	order, err := e.graph.TopoSort()
	if err != nil {
		return err
	}
	byStep := map[string][]*journal.StepState{}
	for _, addr := range state.Order {
		name := addr
		if i := strings.IndexByte(addr, '['); i >= 0 {
			name = addr[:i]
		}
		byStep[name] = append(byStep[name], state.Steps[addr])
	}
	for _, name := range order {
		n := e.byName[name]
		var keys map[string]lang.Instance
		if n.st.ForEach != nil {
			if insts, known, err := e.rb.Eval.Expand(n.st, e.steps); err == nil && known {
				keys = map[string]lang.Instance{}
				for _, k := range insts {
					e.maskKey(k)
					keys[lang.Address(n.st.Name, k.Key)] = k
				}
			}
		}
		for _, js := range byStep[n.st.Name] {
			in := &Instance{Address: js.Address, Step: n.st, State: js.State, Attempt: js.Attempt}
			if k, ok := keys[js.Address]; ok {
				in.Key = k
			} else {
				in.Key = parseKey(n.st.Name, js.Address)
			}
			var complete bool
			if in.Inputs, complete, err = js.Inputs.Decode(e.sealer(js.Address, fieldInputs)); err != nil {
				return fmt.Errorf("%s: %w", js.Address, err)
			}
			if !complete {
				in.Inputs = e.restoreInputs(n.st, in.Key, in.Inputs)
			}
			if in.Outputs, _, err = js.Outputs.Decode(e.sealer(js.Address, fieldOutputs)); err != nil {
				return fmt.Errorf("%s: %w", js.Address, err)
			}
			e.mask.AddValue(in.Inputs, lang.MarkSensitive)
			e.mask.AddValue(in.Outputs, lang.MarkSensitive)
			var ok bool
			in.undoState, ok = js.UndoState.Bytes(e.sealer(js.Address, fieldUndoState))
			in.undoLost = !ok
			if js.State == journal.StepRunning {
				in.checkpoint, _ = js.Checkpoint.Bytes(e.sealer(js.Address, fieldCheckpoint))
			}
			n.insts = append(n.insts, in)
		}
		e.steps[n.st.Name] = e.stepValue(n)
	}
	for addr := range state.Steps {
		name := addr
		if i := strings.IndexByte(addr, '['); i >= 0 {
			name = addr[:i]
		}
		if _, ok := e.byName[name]; !ok {
			e.emit(event.Event{Type: event.Warning, Step: addr, Message: "the journal has this step but the runbook no longer does; it cannot be undone"})
		}
	}
	return nil
}

// parseKey recovers the for_each key from an address (`db["x"]`, `db[0]`).
func parseKey(name, addr string) lang.Instance {
	rest := strings.TrimPrefix(addr, name)
	if len(rest) < 2 || rest[0] != '[' || rest[len(rest)-1] != ']' {
		return lang.Instance{Key: cty.NilVal, Value: cty.NilVal}
	}
	inner := rest[1 : len(rest)-1]
	if s, err := strconv.Unquote(inner); err == nil {
		return lang.Instance{Key: cty.StringVal(s), Value: cty.StringVal(s)}
	}
	if v, err := cty.ParseNumberVal(inner); err == nil {
		return lang.Instance{Key: v, Value: v}
	}
	return lang.Instance{Key: cty.NilVal, Value: cty.NilVal}
}

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

// needsUndo: the step declares a rollback, and the instance completed, or
// failed (or was interrupted) leaving partial undo state.
func needsUndo(in *Instance) bool {
	if in.Step.Rollback == nil {
		return false
	}
	switch in.State {
	case journal.StepSucceeded, journal.StepUndoFailed, journal.StepUndoing:
		return true
	case journal.StepFailed, journal.StepCancelled, journal.StepRunning:
		return in.undoState != nil
	}
	return false
}

type undoMsg struct {
	in *Instance
	n  *node
}

// rollback undoes every instance that needs it, in reverse dependency
// order: a step is undone once every step depending on it (directly or
// not) is undone; independent undos run in parallel within the
// parallelism cap. An undo failure blocks the undo of what the failed step
// depends on. It returns the final run state.
func (e *executor) rollback(ctx context.Context, standalone bool) (string, error) {
	if err := e.append(&journal.Record{Type: journal.RecRunState, State: journal.RunRollingBack}); err != nil {
		return "", err
	}
	e.emit(event.Event{Type: event.RollbackStarted})
	blocked := map[*node]string{} // node -> the dependent whose undo failed
	failed := false
	var queue []undoMsg
	running := 0
	done := make(chan undoMsg, e.opts.Parallelism)
	open := map[*node]int{}
	var readyNode func(n *node) error
	var nodeUndone func(n *node) error
	nodeUndone = func(n *node) error {
		bad := blocked[n]
		for _, in := range n.insts {
			if in.State == journal.StepUndoFailed {
				bad = n.st.Name
			}
		}
		for _, d := range n.deps {
			if bad != "" {
				if _, ok := blocked[d]; !ok {
					blocked[d] = bad
				}
			}
			d.remaining--
			if d.remaining == 0 {
				if err := readyNode(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	readyNode = func(n *node) error {
		var todo []*Instance
		for _, in := range n.insts {
			if needsUndo(in) {
				todo = append(todo, in)
			}
		}
		if len(todo) == 0 {
			return nodeUndone(n)
		}
		if by, ok := blocked[n]; ok {
			for _, in := range todo {
				failed = true
				e.emit(event.Event{Type: event.UndoSkipped, Step: in.Address, Message: fmt.Sprintf("not undone: the undo of %s, which depends on it, failed", by)})
			}
			return nodeUndone(n)
		}
		if ctx.Err() != nil {
			failed = true
			return nodeUndone(n)
		}
		open[n] = len(todo)
		for _, in := range todo {
			queue = append(queue, undoMsg{in: in, n: n})
		}
		return nil
	}
	var leaves []*node
	for _, n := range e.nodes {
		n.remaining = len(n.dependents)
		if n.remaining == 0 {
			leaves = append(leaves, n)
		}
	}
	for _, n := range leaves {
		if err := readyNode(n); err != nil {
			return "", err
		}
	}
	for {
		for len(queue) > 0 && running < e.opts.Parallelism {
			m := queue[0]
			queue = queue[1:]
			if ctx.Err() != nil {
				failed = true
				m.in.undoErr = ctx.Err()
				open[m.n]--
				if open[m.n] == 0 {
					if err := nodeUndone(m.n); err != nil {
						return "", err
					}
				}
				continue
			}
			inputs, err := e.undoInputs(m.n, m.in)
			running++
			go func(m undoMsg, inputs cty.Value, ierr error) {
				if ierr == nil {
					ierr = e.undoInstance(ctx, m.n, m.in, inputs)
				} else {
					ierr = e.undoFailed(m.in, &StepError{Address: m.in.Address, Kind: sdk.KindInvalid, Msg: e.mask.Mask(ierr.Error())})
				}
				if je, ok := ierr.(*journalError); ok {
					m.in.undoErr = je
				}
				done <- m
			}(m, inputs, err)
		}
		if running == 0 {
			break
		}
		m := <-done
		running--
		if je, ok := m.in.undoErr.(*journalError); ok {
			return "", je.err
		}
		if m.in.State != journal.StepUndone {
			failed = true
		}
		open[m.n]--
		if open[m.n] == 0 {
			if err := nodeUndone(m.n); err != nil {
				return "", err
			}
		}
	}
	if failed || ctx.Err() != nil {
		return journal.RunRollbackFailed, nil
	}
	return journal.RunRolledBack, nil
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
	if err := e.append(&journal.Record{Type: journal.RecUndoFailed, Step: in.Address, Error: &journal.ErrorInfo{Message: serr.Msg, Kind: string(serr.Kind), Hint: serr.Hint}}); err != nil {
		return &journalError{err}
	}
	e.emit(event.Event{Type: event.UndoFailed, Step: in.Address, Error: serr.Msg, Kind: string(serr.Kind), Hint: serr.Hint})
	return nil
}

// undoInstance runs the undo of one instance with the step's retry and
// timeout. It runs on its own goroutine.
func (e *executor) undoInstance(ctx context.Context, n *node, in *Instance, inputs cty.Value) error {
	st := n.st
	if err := e.append(&journal.Record{Type: journal.RecUndoStarted, Step: in.Address}); err != nil {
		return &journalError{err}
	}
	e.emit(event.Event{Type: event.UndoStarted, Step: in.Address})
	max := 1
	if st.Retry != nil && st.Retry.Attempts > 1 {
		max = st.Retry.Attempts
	}
	plain, pvm := inputs.UnmarkDeepWithPaths()
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
		evs := &stepEvents{e: e, addr: in.Address, attempt: att, undo: true}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if st.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, st.Timeout)
		}
		var err error
		if st.Rollback.Native {
			err = e.provs[st.Plugin].Undo(actx, st.Action, &sdk.UndoRequest{Inputs: plain, Outputs: outs, UndoState: in.undoState, IdempotencyKey: key}, evs)
		} else {
			_, err = e.provs[st.Rollback.Plugin].Apply(actx, st.Rollback.Action, &sdk.ApplyRequest{Inputs: plain, IdempotencyKey: key, Sensitive: sens}, evs)
		}
		cancel()
		if err == nil {
			if jerr := e.append(&journal.Record{Type: journal.RecUndoSucceeded, Step: in.Address}); jerr != nil {
				return &journalError{jerr}
			}
			in.State = journal.StepUndone
			e.emit(event.Event{Type: event.UndoSucceeded, Step: in.Address, DurationMS: e.now().Sub(t0).Milliseconds()})
			return nil
		}
		ce := sdk.Classify(err)
		serr := &StepError{Address: in.Address, Kind: ce.Kind, Hint: e.mask.Mask(ce.Hint), Msg: e.mask.Mask(errText(ce))}
		if ctx.Err() == nil && att < max && (ce.Retryable || (st.Retry != nil && st.Retry.AnyError)) {
			d := backoff(st.Retry, att)
			e.emit(event.Event{Type: event.StepRetry, Step: in.Address, Attempt: att, Error: serr.Msg, Kind: string(ce.Kind), DelayMS: d.Milliseconds(), Message: "undo"})
			if e.sleep(ctx, d) == nil {
				continue
			}
		}
		return e.undoFailed(in, serr)
	}
}

// Rollback undoes a run from its journal: every instance that completed
// (or failed with partial undo state, or whose undo failed before) and
// is not undone yet, in reverse dependency order. rb must be the runbook
// the run was made from (for rollback blocks and dependencies).
func Rollback(ctx context.Context, rb *Runbook, opts Options, state *journal.State) (*Result, error) {
	start := time.Now()
	opts.Resume = nil
	e, err := newExecutor(ctx, rb, opts)
	if err != nil {
		return nil, err
	}
	if err := e.loadInstances(state); err != nil {
		return nil, err
	}
	st, err := e.rollback(ctx, true)
	if err != nil {
		return nil, err
	}
	if err := e.append(&journal.Record{Type: journal.RecRunState, State: st}); err != nil {
		return nil, err
	}
	res := &Result{State: st, Instances: e.instances(), Interrupted: ctx.Err() != nil, Duration: time.Since(start)}
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
	order, err := topo(e.nodes)
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
	for _, n := range order {
		var keys map[string]lang.Instance
		if n.st.ForEach != nil {
			if insts, known, err := e.rb.Eval.Expand(n.st, e.steps); err == nil && known {
				keys = map[string]lang.Instance{}
				for _, k := range insts {
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
			if in.Inputs, _, err = js.Inputs.Decode(e.opts.Sealer); err != nil {
				return fmt.Errorf("%s: %w", js.Address, err)
			}
			if in.Outputs, _, err = js.Outputs.Decode(e.opts.Sealer); err != nil {
				return fmt.Errorf("%s: %w", js.Address, err)
			}
			e.mask.AddValue(in.Inputs, lang.MarkSensitive)
			e.mask.AddValue(in.Outputs, lang.MarkSensitive)
			var ok bool
			in.undoState, ok = js.UndoState.Bytes(e.opts.Sealer)
			in.undoLost = !ok
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

// topo orders nodes so that dependencies come first.
func topo(nodes []*node) ([]*node, error) {
	rem := map[*node]int{}
	var q, out []*node
	for _, n := range nodes {
		rem[n] = len(n.deps)
		if rem[n] == 0 {
			q = append(q, n)
		}
	}
	for len(q) > 0 {
		n := q[0]
		q = q[1:]
		out = append(out, n)
		for _, d := range n.dependents {
			rem[d]--
			if rem[d] == 0 {
				q = append(q, d)
			}
		}
	}
	if len(out) != len(nodes) {
		return nil, fmt.Errorf("steps form a cycle")
	}
	return out, nil
}

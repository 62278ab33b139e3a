package run

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/sdk"

	"github.com/runbookdev/runbook/internal/ctyx"
)

// node is one step of the graph during a walk.
type node struct {
	st         *lang.Step
	deps       []*node
	dependents []*node
	schema     sdk.ActionSchema
	capKey     string // plugin.action, for MaxConcurrency

	// The fields below are only touched by the scheduler goroutine.
	remaining int  // dependencies not yet terminal (forward walk) / dependents not yet undone (rollback)
	upFailed  bool // some dependency did not succeed
	upName    string
	done      bool // terminal
	ok        bool // every instance succeeded or was skipped by its condition
	insts     []*Instance
	open      int // instances not yet terminal
}

// executor is one Apply or Rollback.
type executor struct {
	rb   *Runbook
	opts Options
	mask *mask.Masker
	sink event.Sink
	// showOutputs: the sink shows step outputs, so step_succeeded events
	// carry them rendered (set once, read-only).
	showOutputs bool
	nodes       []*node
	byName      map[string]*node
	provs       map[string]sdk.Provider // plugin name -> provider, fetched before the walk

	// Scheduler state; only the scheduler goroutine touches it.
	steps    map[string]cty.Value // what step.NAME evaluates to
	queue    []*Instance
	running  int            // instances holding a parallelism slot
	inflight int            // instances whose goroutine has not sent its doneMsg yet
	caps     map[string]int // capKey -> running count
	mode     string         // "" | lang.OnFailureRollback | lang.OnFailureAbort
	failed   bool           // some instance failed (any policy)
	firstErr error
	resumed  map[string]*journal.StepState
	done     chan doneMsg
	// freed receives an instance whose plugin call succeeded and which now
	// only waits for its result to be durable: its slot goes to the next
	// queued instance meanwhile. Buffered, so that the step's goroutine
	// does not wait for the scheduler; its doneMsg may then be seen first,
	// which releases the slot too (releaseSlot acts once per dispatch).
	freed chan *Instance
	// jobs hands an instance to an idle worker goroutine (unbuffered: a
	// send succeeds only when a worker waits). Workers outlive one step so
	// that each step does not grow a fresh goroutine stack again through
	// the deep plugin-call and value-encoding call chains. quit, closed
	// when Apply returns, ends the idle workers.
	jobs chan job
	quit chan struct{}
}

type job struct {
	ctx context.Context
	n   *node
	in  *Instance
}

type doneMsg struct {
	in  *Instance
	err error
}

func (e *executor) now() time.Time {
	if e.opts.Now != nil {
		return e.opts.Now()
	}
	return time.Now()
}

func (e *executor) emit(ev event.Event) {
	ev.V = event.Version
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	ev.RunID = e.opts.RunID
	ev.Message = e.mask.Mask(ev.Message)
	ev.Error = e.mask.Mask(ev.Error)
	ev.Hint = e.mask.Mask(ev.Hint)
	e.sink.Emit(ev)
}

func (e *executor) append(r *journal.Record) error {
	if e.opts.Journal == nil {
		return nil
	}
	e.maskRecord(r)
	return e.opts.Journal.Append(r)
}

// appendNoWait journals a record whose loss in a crash is harmless.
func (e *executor) appendNoWait(r *journal.Record) error {
	if e.opts.Journal == nil {
		return nil
	}
	e.maskRecord(r)
	return e.opts.Journal.AppendNoWait(r)
}

func (e *executor) maskRecord(r *journal.Record) {
	if r.Error != nil {
		r.Error.Message = e.mask.Mask(r.Error.Message)
		r.Error.Hint = e.mask.Mask(r.Error.Hint)
	}
	r.Message = e.mask.Mask(r.Message)
}

func newExecutor(ctx context.Context, rb *Runbook, opts Options) (*executor, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	e := &executor{rb: rb, opts: opts, mask: opts.Mask, sink: opts.Sink,
		byName: map[string]*node{}, provs: map[string]sdk.Provider{},
		steps: map[string]cty.Value{}, caps: map[string]int{}, resumed: map[string]*journal.StepState{},
		done: make(chan doneMsg, opts.Parallelism), freed: make(chan *Instance, 2*opts.Parallelism),
		jobs: make(chan job), quit: make(chan struct{})}
	if e.mask == nil {
		e.mask = mask.New()
	}
	if e.sink == nil {
		e.sink = event.Discard
	}
	e.showOutputs = event.ShowsOutputs(e.sink)
	schemas := map[string]*sdk.PluginSchema{}
	provider := func(name string) (*sdk.PluginSchema, error) {
		if s, ok := schemas[name]; ok {
			return s, nil
		}
		if opts.Providers == nil {
			return nil, fmt.Errorf("no plugin host")
		}
		p, err := opts.Providers.Provider(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", name, err)
		}
		s, err := p.Schema(ctx)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: schema: %w", name, err)
		}
		e.provs[name] = p
		schemas[name] = s
		return s, nil
	}
	for _, st := range rb.Steps {
		s, err := provider(st.Plugin)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", st.Name, err)
		}
		as, ok := s.Action(st.Action)
		if !ok {
			return nil, fmt.Errorf("step %s: plugin %s has no action %s", st.Name, st.Plugin, st.Action)
		}
		if st.Rollback != nil && !st.Rollback.Native {
			if _, err := provider(st.Rollback.Plugin); err != nil {
				return nil, fmt.Errorf("rollback of step %s: %w", st.Name, err)
			}
		}
		n := &node{st: st, schema: as, capKey: st.Plugin + "." + st.Action}
		e.nodes = append(e.nodes, n)
		e.byName[st.Name] = n
	}
	for _, n := range e.nodes {
		for _, d := range n.st.Deps {
			dn, ok := e.byName[d]
			if !ok {
				return nil, fmt.Errorf("step %s depends on unknown step %s", n.st.Name, d)
			}
			n.deps = append(n.deps, dn)
			dn.dependents = append(dn.dependents, n)
		}
	}
	if opts.Resume != nil {
		e.resumed = opts.Resume.Steps
	}
	return e, nil
}

// Apply runs rb: the forward walk, then always steps and, when a step with
// on_failure = "rollback" failed, the undo of everything completed.
// ctx cancellation (Ctrl-C) stops the run cleanly: running attempts are
// cancelled and the run is left resumable. The error is only for problems
// that prevented the run (plugins that cannot start, a journal that cannot
// be written); step failures are in Result.
func Apply(ctx context.Context, rb *Runbook, opts Options) (*Result, error) {
	start := time.Now()
	e, err := newExecutor(ctx, rb, opts)
	if err != nil {
		return nil, err
	}
	defer close(e.quit)
	if err := e.forward(ctx); err != nil {
		return nil, err
	}
	res := &Result{Err: e.firstErr}
	switch {
	case ctx.Err() != nil:
		res.State = journal.RunInterrupted
		res.Interrupted = true
	case e.mode == lang.OnFailureRollback:
		state, err := e.rollback(ctx, false)
		if err != nil {
			return nil, err
		}
		res.State = state
		res.Interrupted = ctx.Err() != nil
	case e.mode == lang.OnFailureAbort:
		res.State = journal.RunAborted
	case e.failed:
		res.State = journal.RunFailed
	default:
		res.State = journal.RunSucceeded
		// The runbook's outputs may name any step: give them every value.
		for _, n := range e.nodes {
			if _, ok := e.steps[n.st.Name]; !ok && n.done && !e.rb.NoOutputs {
				e.steps[n.st.Name] = e.stepValue(n)
			}
		}
		outs, err := e.rb.Eval.Outputs(e.steps)
		if err != nil {
			res.Err = errors.New(e.mask.Mask(err.Error()))
			res.State = journal.RunFailed
		}
		for _, v := range outs {
			e.mask.AddValue(v, lang.MarkSensitive)
		}
		res.Outputs = outs
	}
	if err := e.append(&journal.Record{Type: journal.RecRunState, State: res.State}); err != nil {
		return nil, err
	}
	res.Instances = e.instances()
	res.Duration = time.Since(start)
	return res, nil
}

func (e *executor) instances() []*Instance {
	var out []*Instance
	for _, n := range e.nodes {
		out = append(out, n.insts...)
	}
	return out
}

// forward is the forward walk. It returns when no instance runs and none
// can start.
func (e *executor) forward(ctx context.Context) error {
	var roots []*node
	for _, n := range e.nodes {
		n.remaining = len(n.deps)
		if n.remaining == 0 {
			roots = append(roots, n)
		}
	}
	// ready may finish nodes at once (resume, skips) and ready their
	// dependents itself, so collect the roots first. They are readied one
	// at a time while a slot is free: readying evaluates a step's condition
	// and inputs, and the first of many independent steps should start at
	// once rather than after every one of them is prepared (1,000 roots
	// took 25 ms or more). Dependents are readied as their dependencies
	// finish, so they go before roots not yet readied.
	for {
		if err := e.dispatch(ctx); err != nil {
			return err
		}
		for len(roots) > 0 && e.running < e.opts.Parallelism {
			n := roots[0]
			roots = roots[1:]
			if err := e.ready(ctx, n); err != nil {
				return err
			}
			if err := e.dispatch(ctx); err != nil {
				return err
			}
		}
		if e.inflight == 0 {
			if len(e.queue) == 0 {
				return nil
			}
			// Only instances blocked by a cap remain: cannot happen while
			// nothing runs, but never spin.
			return fmt.Errorf("internal: %d instances queued with nothing running", len(e.queue))
		}
		select {
		case in := <-e.freed:
			e.releaseSlot(in)
		case m := <-e.done:
			e.inflight--
			e.releaseSlot(m.in)
			if err := e.finished(ctx, m); err != nil {
				return err
			}
		}
	}
}

// releaseSlot gives back in's parallelism slot, once.
func (e *executor) releaseSlot(in *Instance) {
	if in.slotFreed {
		return
	}
	in.slotFreed = true
	e.running--
	e.caps[in.Step.Plugin+"."+in.Step.Action]--
}

// stopping reports whether new non-always steps must not start.
func (e *executor) stopping(ctx context.Context) bool {
	return ctx.Err() != nil || e.mode != ""
}

// ready is called once all of n's dependencies are terminal.
func (e *executor) ready(ctx context.Context, n *node) error {
	if e.stopping(ctx) && !(n.st.Always && ctx.Err() == nil) {
		// Not started: stays pending (a resume starts it).
		n.insts = []*Instance{{Address: n.st.Name, Step: n.st, State: journal.StepPending}}
		return e.nodeDone(ctx, n)
	}
	if n.upFailed && !n.st.Always {
		in := &Instance{Address: n.st.Name, Step: n.st, State: journal.StepSkipped}
		n.insts = []*Instance{in}
		msg := fmt.Sprintf("dependency %s did not succeed", n.upName)
		e.emit(event.Event{Type: event.StepSkipped, Step: in.Address, Message: msg})
		if err := e.append(&journal.Record{Type: journal.RecStepSkipped, Step: in.Address, Message: msg}); err != nil {
			return err
		}
		return e.nodeDone(ctx, n)
	}
	insts, known, err := e.rb.Eval.Expand(n.st, e.steps)
	if err == nil && !known {
		err = fmt.Errorf("for_each is not known although every dependency has run")
	}
	if err != nil {
		in := &Instance{Address: n.st.Name, Step: n.st}
		n.insts = []*Instance{in}
		n.open = 1
		return e.fail(ctx, in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.mask.Mask(err.Error())})
	}
	for _, k := range insts {
		in := &Instance{Address: lang.Address(n.st.Name, k.Key), Step: n.st, Key: k, State: journal.StepPending}
		n.insts = append(n.insts, in)
	}
	n.open = len(n.insts)
	if n.open == 0 {
		return e.nodeDone(ctx, n)
	}
	for _, in := range n.insts {
		if err := e.prepare(ctx, n, in); err != nil {
			return err
		}
	}
	return nil
}

// prepare decides what to do with a new instance: reuse (resume), skip
// (condition false), fail (bad inputs) or queue.
func (e *executor) prepare(ctx context.Context, n *node, in *Instance) error {
	if js, ok := e.resumed[in.Address]; ok {
		switch js.State {
		case journal.StepSucceeded:
			return e.reuse(ctx, in, js)
		case journal.StepRunning, journal.StepCancelled:
			in.resumeAtt = js.Attempt
			in.Attempt = js.Attempt - 1
			if b, ok := js.Checkpoint.Bytes(e.opts.Sealer); ok {
				in.checkpoint = b
			}
		case journal.StepFailed:
			in.Attempt = js.Attempt
		}
	}
	run, err := e.rb.Eval.When(n.st, in.Key, e.steps)
	if err != nil {
		return e.fail(ctx, in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.mask.Mask(err.Error())})
	}
	if !run {
		in.State = journal.StepSkipped
		e.emit(event.Event{Type: event.StepSkipped, Step: in.Address, Message: "condition is false"})
		if err := e.append(&journal.Record{Type: journal.RecStepSkipped, Step: in.Address, Message: "condition is false"}); err != nil {
			return err
		}
		return e.instDone(ctx, in)
	}
	inputs, err := e.rb.Eval.Inputs(n.st, in.Key, e.steps)
	if err != nil {
		return e.fail(ctx, in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.mask.Mask(err.Error())})
	}
	inputs = e.taint(inputs)
	e.mask.AddValue(inputs, lang.MarkSensitive)
	in.Inputs = inputs
	e.queue = append(e.queue, in)
	return nil
}

// reuse keeps a journaled success on resume.
func (e *executor) reuse(ctx context.Context, in *Instance, js *journal.StepState) error {
	var err error
	if in.Inputs, _, err = js.Inputs.Decode(e.opts.Sealer); err != nil {
		return fmt.Errorf("resume %s: %w", in.Address, err)
	}
	var complete bool
	if in.Outputs, complete, err = js.Outputs.Decode(e.opts.Sealer); err != nil {
		return fmt.Errorf("resume %s: %w", in.Address, err)
	}
	if !complete {
		e.emit(event.Event{Type: event.Warning, Step: in.Address,
			Message: "its sensitive outputs were not journaled (no RUNBOOK_STATE_KEY): steps that use them see null"})
	}
	e.mask.AddValue(in.Inputs, lang.MarkSensitive)
	e.mask.AddValue(in.Outputs, lang.MarkSensitive)
	var ok bool
	in.undoState, ok = js.UndoState.Bytes(e.opts.Sealer)
	in.undoLost = !ok
	in.State = journal.StepSucceeded
	in.Reused = true
	in.Attempt = js.Attempt
	in.Started, in.Ended = js.Started, js.Ended
	e.emit(event.Event{Type: event.StepReused, Step: in.Address, Action: in.Step.Plugin + "." + in.Step.Action})
	return e.instDone(ctx, in)
}

// dispatch starts queued instances while slots are free.
func (e *executor) dispatch(ctx context.Context) error {
	if e.stopping(ctx) {
		// Drop what has not started, except always steps (when not
		// interrupted).
		keep := e.queue[:0]
		var dropped []*Instance
		for _, in := range e.queue {
			if in.Step.Always && ctx.Err() == nil {
				keep = append(keep, in)
			} else {
				dropped = append(dropped, in)
			}
		}
		e.queue = keep
		for _, in := range dropped {
			in.State = journal.StepPending
			if err := e.instDone(ctx, in); err != nil {
				return err
			}
		}
	}
	for i := 0; i < len(e.queue) && e.running < e.opts.Parallelism; {
		in := e.queue[i]
		n := e.byName[in.Step.Name]
		if c := n.schema.MaxConcurrency; c > 0 && e.caps[n.capKey] >= c {
			i++
			continue
		}
		e.queue = append(e.queue[:i], e.queue[i+1:]...)
		e.running++
		e.inflight++
		in.slotFreed = false
		e.caps[n.capKey]++
		in.State = journal.StepRunning
		j := job{ctx: ctx, n: n, in: in}
		select {
		case e.jobs <- j:
		default:
			go e.worker(j)
		}
	}
	return nil
}

// worker runs j, then whatever the scheduler hands it next, until the run
// ends.
func (e *executor) worker(j job) {
	for {
		err := e.applyInstance(j.ctx, j.n, j.in)
		e.done <- doneMsg{in: j.in, err: err}
		select {
		case j = <-e.jobs:
		case <-e.quit:
			return
		}
	}
}

// finished handles an instance whose attempts ended.
func (e *executor) finished(ctx context.Context, m doneMsg) error {
	in := m.in
	var jerr *journalError
	if errors.As(m.err, &jerr) {
		return jerr.err
	}
	switch in.State {
	case journal.StepSucceeded:
		// (Its outputs' secrets were given to the masker by the step's
		// goroutine, before they were journaled or shown.)
		return e.instDone(ctx, in)
	case journal.StepCancelled:
		return e.instDone(ctx, in)
	}
	return e.failed2(ctx, in, m.err)
}

// fail records a failure found by the scheduler (bad inputs, expansion).
func (e *executor) fail(ctx context.Context, in *Instance, err *StepError) error {
	in.Attempt++
	ei := &journal.ErrorInfo{Message: err.Msg, Kind: string(err.Kind)}
	if jerr := e.append(&journal.Record{Type: journal.RecStepFailed, Step: in.Address, Attempt: in.Attempt, Error: ei}); jerr != nil {
		return jerr
	}
	in.State = journal.StepFailed
	e.emit(event.Event{Type: event.StepFailed, Step: in.Address, Attempt: in.Attempt, Error: err.Msg, Kind: string(err.Kind)})
	return e.failed2(ctx, in, err)
}

// failed2 applies the step's on_failure policy; the failure is journaled.
func (e *executor) failed2(ctx context.Context, in *Instance, err error) error {
	in.State = journal.StepFailed
	in.Err = err
	e.failed = true
	if e.firstErr == nil {
		e.firstErr = err
	}
	if ctx.Err() == nil {
		switch in.Step.OnFailure {
		case lang.OnFailureContinue:
		case lang.OnFailureAbort:
			if e.mode == "" {
				e.mode = lang.OnFailureAbort
			}
		default:
			e.mode = lang.OnFailureRollback
		}
	}
	return e.instDone(ctx, in)
}

// instDone is called once per instance when it is terminal.
func (e *executor) instDone(ctx context.Context, in *Instance) error {
	n := e.byName[in.Step.Name]
	n.open--
	if n.open > 0 {
		return nil
	}
	return e.nodeDone(ctx, n)
}

// nodeDone marks n terminal, publishes its value and readies dependents.
func (e *executor) nodeDone(ctx context.Context, n *node) error {
	n.done = true
	n.ok = true
	for _, in := range n.insts {
		if in.State != journal.StepSucceeded && in.State != journal.StepSkipped {
			n.ok = false
		}
		if in.State == journal.StepSkipped && n.upFailed && !n.st.Always {
			n.ok = false // skipped because a dependency failed
		}
	}
	if len(n.insts) == 0 && (n.upFailed || e.stopping(ctx)) {
		n.ok = false
	}
	// Only dependents read a step's value during the walk (Step.Deps
	// covers references through locals and rollback blocks too); the
	// runbook's outputs get the others at the end.
	if len(n.dependents) > 0 {
		e.steps[n.st.Name] = e.stepValue(n)
	}
	for _, d := range n.dependents {
		if !n.ok && !d.upFailed {
			d.upFailed = true
			d.upName = n.st.Name
		}
		d.remaining--
		if d.remaining == 0 {
			if err := e.ready(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// stepValue is what step.NAME evaluates to.
func (e *executor) stepValue(n *node) cty.Value {
	val := func(in *Instance) cty.Value {
		outs := in.Outputs
		if outs == cty.NilVal {
			outs = cty.NullVal(n.schema.OutputType())
		}
		ins := in.Inputs
		if ins == cty.NilVal {
			ins = cty.EmptyObjectVal
		}
		return lang.StepValue(ins, outs)
	}
	if n.st.ForEach == nil {
		if len(n.insts) == 1 {
			return val(n.insts[0])
		}
		return lang.StepValue(cty.EmptyObjectVal, cty.NullVal(n.schema.OutputType()))
	}
	m := map[string]cty.Value{}
	for _, in := range n.insts {
		if in.Key.Key == cty.NilVal {
			continue
		}
		k, _ := in.Key.Key.Unmark()
		if k.Type() == cty.String {
			m[k.AsString()] = val(in)
		}
	}
	return cty.ObjectVal(m)
}

// taint marks every string inside v that contains a known secret.
func (e *executor) taint(v cty.Value) cty.Value {
	if v == cty.NilVal || e.mask.Empty() {
		return v
	}
	taints := func(x cty.Value) bool {
		ux, _ := x.Unmark()
		return ux.Type() == cty.String && ux.IsKnown() && !ux.IsNull() && !x.HasMark(lang.MarkSensitive) && e.mask.Contains(ux.AsString())
	}
	if !ctyx.ContainsMarked(v) {
		// Usually no string holds a secret: find out without copying v.
		need := false
		_ = cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
			if need || taints(x) {
				need = true
				return false, nil
			}
			return true, nil
		})
		if !need {
			return v
		}
	}
	out, err := cty.Transform(v, func(p cty.Path, x cty.Value) (cty.Value, error) {
		if taints(x) {
			return x.Mark(lang.MarkSensitive), nil
		}
		return x, nil
	})
	if err != nil {
		return v
	}
	return out
}

type journalError struct{ err error }

func (e *journalError) Error() string { return e.err.Error() }

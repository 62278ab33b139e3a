package run

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/graph"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/sdk"

	"github.com/runbookdev/runbook/internal/ctyx"
)

// node is one step during a walk.
type node struct {
	st         *lang.Step
	dependents []*node // steps that depend on this one (e.graph.Dependents)
	schema     sdk.ActionSchema
	undoCap    int // MaxConcurrency of the rollback block's action

	// The fields below are only touched by the scheduler goroutine.
	wait     int     // nodes of the walk's graph this one still waits for
	next     []*node // nodes of the walk's graph that wait for this one
	upFailed bool    // some dependency did not succeed
	upName   string
	blocked  string // rollback: the failed undo that keeps this one from running
	done     bool   // terminal
	ok       bool   // every instance succeeded or was skipped by its condition
	insts    []*Instance
	open     int // instances not yet terminal in this walk
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
	graph       *graph.Graph            // the step graph (read-only once built)
	provs       map[string]sdk.Provider // plugin name -> provider, fetched before the walk
	stop        stopper                 // thread-safe

	// Scheduler state; only the scheduler goroutine touches it.
	dir      direction
	steps    map[string]cty.Value // what step.NAME evaluates to
	queue    []*Instance
	running  int            // instances dispatched whose doneMsg has not been received
	caps     map[string]int // capKey -> running count
	mode     string         // "" | lang.OnFailureRollback | lang.OnFailureAbort
	failed   bool           // some instance failed (any policy)
	firstErr error
	undoBad  bool // rollback: some undo failed or was not run
	resumed  map[string]*journal.StepState
	done     chan doneMsg
	// jobs hands an instance to an idle worker goroutine (unbuffered: a
	// send succeeds only when a worker waits). quit, closed when Apply or
	// Rollback returns, ends the idle workers.
	jobs chan job
	quit chan struct{}
}

type job struct {
	ctx  context.Context
	in   *Instance
	work func(context.Context, *Instance) error
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

func newExecutor(ctx context.Context, rb *Runbook, opts Options) (*executor, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	e := &executor{rb: rb, opts: opts, mask: opts.Mask, sink: opts.Sink,
		byName: map[string]*node{}, provs: map[string]sdk.Provider{}, graph: graph.New(),
		steps: map[string]cty.Value{}, caps: map[string]int{}, resumed: map[string]*journal.StepState{},
		done: make(chan doneMsg, opts.Parallelism),
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
		n := &node{st: st, schema: as}
		if st.Rollback != nil && !st.Rollback.Native {
			rs, err := provider(st.Rollback.Plugin)
			if err != nil {
				return nil, fmt.Errorf("rollback of step %s: %w", st.Name, err)
			}
			if ra, ok := rs.Action(st.Rollback.Action); ok {
				n.undoCap = ra.MaxConcurrency
			}
		}
		e.nodes = append(e.nodes, n)
		e.byName[st.Name] = n
		e.graph.AddNode(st.Name)
	}
	for _, n := range e.nodes {
		for _, d := range n.st.Deps {
			if _, ok := e.byName[d]; !ok {
				return nil, fmt.Errorf("step %s depends on unknown step %s", n.st.Name, d)
			}
			e.graph.AddEdge(n.st.Name, d)
		}
	}
	if cyc := e.graph.Cycles(); len(cyc) > 0 {
		return nil, &graph.CycleError{Cycles: cyc}
	}
	for _, n := range e.nodes {
		for _, d := range e.graph.Dependents(n.st.Name) {
			n.dependents = append(n.dependents, e.byName[d])
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
// that prevented the run or stopped it (plugins that cannot start; a
// journal that cannot be written, a *JournalError, after which the calls in
// flight were cancelled and waited for); step failures are in Result.
func Apply(ctx context.Context, rb *Runbook, opts Options) (*Result, error) {
	start := time.Now()
	e, err := newExecutor(ctx, rb, opts)
	if err != nil {
		return nil, err
	}
	defer close(e.quit)
	if err := e.walk(ctx, e.graph, e.forward()); err != nil {
		return nil, err
	}
	res := &Result{Err: e.firstErr}
	switch {
	case ctx.Err() != nil:
		res.State = journal.RunInterrupted
		res.Interrupted = true
	case e.mode == lang.OnFailureRollback:
		state, err := e.rollback(ctx)
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
			res.Err = errors.New(e.maskErr(err))
			res.State = journal.RunFailed
		}
		for _, v := range outs {
			e.mask.AddValue(v, lang.MarkSensitive)
		}
		res.Outputs = outs
	}
	if err := e.end(ctx, res); err != nil {
		return nil, err
	}
	res.Instances = e.instances()
	res.Duration = time.Since(start)
	return res, nil
}

// end journals the run's end state, or leaves it in res.Final
// (Options.KeepFinal).
func (e *executor) end(ctx context.Context, res *Result) error {
	r := &journal.Record{Type: journal.RecRunState, State: res.State}
	if !e.opts.KeepFinal || res.Interrupted || ctx.Err() != nil {
		return e.transition(r, extra{})
	}
	if err := e.stop.err(); err != nil {
		return err
	}
	e.maskRecord(r)
	res.Final = r
	return nil
}

func (e *executor) instances() []*Instance {
	var out []*Instance
	for _, n := range e.nodes {
		out = append(out, n.insts...)
	}
	return out
}

// forward is the forward walk's direction.
func (e *executor) forward() direction {
	return direction{
		ready:    e.ready,
		work:     e.applyInstance,
		finished: e.finished,
		settle:   e.settle,
		stopping: e.stopping,
		// Always steps still start when a step failed (not when
		// interrupted); the rest stays pending (a resume starts it).
		keep: func(ctx context.Context, in *Instance) bool { return in.Step.Always && ctx.Err() == nil },
		drop: func(ctx context.Context, in *Instance) error {
			in.State = journal.StepPending
			return e.instDone(ctx, in)
		},
	}
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
		if err := e.transition(&journal.Record{Type: journal.RecStepSkipped, Step: in.Address, Message: msg}, extra{}); err != nil {
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
		return e.fail(ctx, in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.maskErr(err)})
	}
	for _, k := range insts {
		e.maskKey(k)
		in := &Instance{Address: lang.Address(n.st.Name, k.Key), Step: n.st, Key: k, State: journal.StepPending,
			capKey: n.st.Plugin + "." + n.st.Action, cap: n.schema.MaxConcurrency}
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
// (condition false), fail (bad inputs, or inputs the journal cannot store)
// or queue.
func (e *executor) prepare(ctx context.Context, n *node, in *Instance) error {
	if js, ok := e.resumed[in.Address]; ok {
		switch js.State {
		case journal.StepSucceeded:
			return e.reuse(ctx, in, js)
		case journal.StepRunning, journal.StepCancelled:
			in.resumeAtt = js.Attempt
			in.Attempt = js.Attempt - 1
			if b, ok := js.Checkpoint.Bytes(e.sealer(in.Address, fieldCheckpoint)); ok {
				in.checkpoint = b
			}
		case journal.StepFailed:
			in.Attempt = js.Attempt
		}
	}
	invalid := func(err error) error {
		return e.fail(ctx, in, &StepError{Address: in.Address, Kind: sdk.KindInvalid, Msg: e.maskErr(err)})
	}
	run, err := e.rb.Eval.When(n.st, in.Key, e.steps)
	if err != nil {
		return invalid(err)
	}
	if !run {
		in.State = journal.StepSkipped
		if err := e.transition(&journal.Record{Type: journal.RecStepSkipped, Step: in.Address, Message: "condition is false"}, extra{}); err != nil {
			return err
		}
		return e.instDone(ctx, in)
	}
	inputs, err := e.rb.Eval.Inputs(n.st, in.Key, e.steps)
	if err != nil {
		return invalid(err)
	}
	inputs = e.taint(inputs)
	e.mask.AddValue(inputs, lang.MarkSensitive)
	in.Inputs = inputs
	// A value the journal cannot store (an infinity, a value nested too
	// deep) fails the step before its plugin is called.
	if in.jin, err = journal.EncodeValue(inputs, e.sealer(in.Address, fieldInputs)); err != nil {
		return invalid(fmt.Errorf("its inputs cannot be journaled: %s", clip(err.Error())))
	}
	e.queue = append(e.queue, in)
	return nil
}

// clip shortens an error message that can be huge (encoding/json repeats
// itself at every level of a deep value): its start and its end, which
// says what went wrong.
// maskErr is the text of an evaluation error as the operator sees it:
// masked, then with the long values it quotes clipped (see lang.ClipText;
// masking first, as a clipped secret is no longer recognised).
func (e *executor) maskErr(err error) string {
	return lang.ClipText(e.mask.Mask(err.Error()))
}

func clip(msg string) string {
	const head, tail = 120, 160
	if len(msg) <= head+tail+5 {
		return msg
	}
	return msg[:head] + " ... " + msg[len(msg)-tail:]
}

// reuse keeps a journaled success on resume.
func (e *executor) reuse(ctx context.Context, in *Instance, js *journal.StepState) error {
	var err error
	var complete bool
	if in.Inputs, complete, err = js.Inputs.Decode(e.sealer(in.Address, fieldInputs)); err != nil {
		return fmt.Errorf("resume %s: %w", in.Address, err)
	}
	if !complete {
		in.Inputs = e.restoreInputs(in.Step, in.Key, in.Inputs)
	}
	if in.Outputs, complete, err = js.Outputs.Decode(e.sealer(in.Address, fieldOutputs)); err != nil {
		return fmt.Errorf("resume %s: %w", in.Address, err)
	}
	if !complete {
		e.emit(event.Event{Type: event.Warning, Step: in.Address,
			Message: "its sensitive outputs were not journaled (no RUNBOOK_STATE_KEY): steps that use them see null"})
	}
	e.mask.AddValue(in.Inputs, lang.MarkSensitive)
	e.mask.AddValue(in.Outputs, lang.MarkSensitive)
	var ok bool
	in.undoState, ok = js.UndoState.Bytes(e.sealer(in.Address, fieldUndoState))
	in.undoLost = !ok
	in.State = journal.StepSucceeded
	in.Reused = true
	in.Attempt = js.Attempt
	in.Started, in.Ended = js.Started, js.Ended
	e.emit(event.Event{Type: event.StepReused, Step: in.Address, Action: in.Step.Plugin + "." + in.Step.Action})
	return e.instDone(ctx, in)
}

// finished handles an instance whose attempts ended.
func (e *executor) finished(ctx context.Context, in *Instance, err error) error {
	switch in.State {
	case journal.StepSucceeded, journal.StepCancelled:
		// (A success's outputs' secrets were given to the masker by the
		// step's goroutine, before they were journaled or shown.)
		return e.instDone(ctx, in)
	}
	return e.failed2(ctx, in, err)
}

// fail records a failure found by the scheduler (bad inputs, expansion).
func (e *executor) fail(ctx context.Context, in *Instance, err *StepError) error {
	in.Attempt++
	ei := &journal.ErrorInfo{Message: err.Msg, Kind: string(err.Kind)}
	if jerr := e.transition(&journal.Record{Type: journal.RecStepFailed, Step: in.Address, Attempt: in.Attempt, Error: ei}, extra{}); jerr != nil {
		return jerr
	}
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

// settle marks n terminal, publishes its value and tells its dependents
// whether it succeeded.
func (e *executor) settle(ctx context.Context, n *node) {
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
	}
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

// maskKey registers the password of a URL for_each key (see lang.Address)
// as a secret: every text the run writes masks it, and taint marks the
// inputs that hold it sensitive.
func (e *executor) maskKey(k lang.Instance) {
	if lang.KeyHasPassword(k.Key) {
		key, _ := k.Key.Unmark()
		e.mask.Add(key.AsString())
	}
}

// taint marks every string inside v that contains a known secret.
func (e *executor) taint(v cty.Value) cty.Value {
	if v == cty.NilVal || e.mask.Empty() {
		return v
	}
	taints := func(x cty.Value) bool {
		ux, _ := x.Unmark()
		return !x.HasMark(lang.MarkSensitive) && e.holdsSecret(ux)
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

package rbtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/sdk"
)

// Effect is one call of a plugin action that acts (Apply, or an undo), as
// the test's providers saw it.
type Effect struct {
	// Op is "apply" or "undo".
	Op string
	// Step is the step address the call is for (for an undo, the step
	// undone).
	Step string
	// Action is PLUGIN.ACTION called (the rollback action for an undo
	// through a rollback block).
	Action string
	Inputs cty.Value
	Mocked bool
	// Err is the call's error, "" when it succeeded.
	Err string
	// Start and End order the calls: a call that ended before another
	// started has End < the other's Start.
	Start, End int
}

// recorder wraps a run's providers: mocked actions are answered from
// their mock, the others go to the real plugin, and every Apply and Undo
// is recorded. It also injects a sweep's failure or crash.
type recorder struct {
	inner run.Providers
	mocks []*Mock // in priority order: the run's, then the file's

	mu      sync.Mutex
	seq     int
	effects []*Effect
	provs   map[string]sdk.Provider

	// failAt: the step address whose apply fails with failKind.
	failAt   string
	failKind sdk.Kind
	// crashAt: the step address whose apply crashes the engine (after the
	// call did its work): crash is called once.
	crashAt string
	crash   func()
}

func newRecorder(inner run.Providers, mocks []*Mock) *recorder {
	return &recorder{inner: inner, mocks: mocks, provs: map[string]sdk.Provider{}}
}

// Provider implements run.Providers.
func (r *recorder) Provider(ctx context.Context, name string) (sdk.Provider, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.provs[name]; ok {
		return p, nil
	}
	in, err := r.inner.Provider(ctx, name)
	if err != nil {
		return nil, err
	}
	p := &provider{name: name, inner: in, r: r}
	r.provs[name] = p
	return p, nil
}

// Effects returns a copy of what was recorded, in call order.
func (r *recorder) Effects() []Effect {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Effect, len(r.effects))
	for i, e := range r.effects {
		out[i] = *e
	}
	return out
}

func (r *recorder) begin(e *Effect) {
	r.mu.Lock()
	r.seq++
	e.Start = r.seq
	r.effects = append(r.effects, e)
	r.mu.Unlock()
}

func (r *recorder) end(e *Effect, err error) {
	r.mu.Lock()
	r.seq++
	e.End = r.seq
	if err != nil {
		e.Err = err.Error()
	}
	r.mu.Unlock()
}

// takeCrash returns the crash hook once (nil after).
func (r *recorder) takeCrash() func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.crash
	r.crash = nil
	return c
}

// mock finds the mock for a call of plugin.action for step addr: one
// naming the step (or the instance) first, then one for every step.
func (r *recorder) mock(plugin, action, addr string) *Mock {
	for _, pass := range []bool{true, false} {
		for _, m := range r.mocks {
			if m.Plugin != plugin || m.Action != action || (m.Step != "") != pass {
				continue
			}
			if !pass || stepMatches(m.Step, addr) {
				return m
			}
		}
	}
	return nil
}

// stepMatches: "copy" matches copy and every copy[...]; `sync["a"]` only
// itself.
func stepMatches(want, addr string) bool {
	return want == addr || !strings.Contains(want, "[") && strings.HasPrefix(addr, want+"[")
}

// splitKey reads the step address out of an idempotency key
// ("RUNID/ADDRESS/ATTEMPT" or "RUNID/ADDRESS/undo-N").
func splitKey(key string) (addr string, undo bool) {
	_, rest, ok := strings.Cut(key, "/")
	if !ok {
		return key, false
	}
	i := strings.LastIndex(rest, "/")
	if i < 0 {
		return rest, false
	}
	return rest[:i], strings.HasPrefix(rest[i+1:], "undo-")
}

// errCrashed is what the crashed call returns: the engine is gone.
var errCrashed = errors.New("the engine crashed here (runbook test -sweep=crash)")

type provider struct {
	name  string
	inner sdk.Provider
	r     *recorder
}

func (p *provider) Schema(ctx context.Context) (*sdk.PluginSchema, error) { return p.inner.Schema(ctx) }

func (p *provider) Validate(ctx context.Context, action string, inputs cty.Value) (sdk.Diagnostics, error) {
	return p.inner.Validate(ctx, action, inputs)
}

func (p *provider) Plan(ctx context.Context, action string, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if p.r.mock(p.name, action, "") != nil {
		return nil, nil
	}
	return p.inner.Plan(ctx, action, req)
}

func (p *provider) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	addr, undo := splitKey(req.IdempotencyKey)
	m := p.r.mock(p.name, action, addr)
	e := &Effect{Op: "apply", Step: addr, Action: p.name + "." + action, Inputs: req.Inputs, Mocked: m != nil}
	if undo {
		e.Op = "undo"
	}
	p.r.begin(e)
	if !undo && p.r.failAt == addr {
		kind := p.r.failKind
		if m != nil && m.Error != "" {
			kind = m.Error
		}
		err := sdk.Errorf(kind, false, "", "failed on purpose by the failure sweep")
		p.r.end(e, err)
		return nil, err
	}
	var res *sdk.Result
	var err error
	if m != nil {
		res, err = p.mockApply(ctx, action, m, ev)
	} else {
		res, err = p.inner.Apply(ctx, action, req, ev)
	}
	p.r.end(e, err)
	if err == nil && !undo && p.r.crashAt == addr {
		if crash := p.r.takeCrash(); crash != nil {
			crash()
			return nil, errCrashed
		}
	}
	return res, err
}

func (p *provider) Undo(ctx context.Context, action string, req *sdk.UndoRequest, ev sdk.Events) error {
	addr, _ := splitKey(req.IdempotencyKey)
	m := p.r.mock(p.name, action, addr)
	e := &Effect{Op: "undo", Step: addr, Action: p.name + "." + action, Inputs: req.Inputs, Mocked: m != nil}
	p.r.begin(e)
	var err error
	switch {
	case m == nil:
		err = p.inner.Undo(ctx, action, req, ev)
	case m.UndoError != "":
		msg := m.UndoMessage
		if msg == "" {
			msg = "the mocked undo fails"
		}
		err = sdk.Errorf(m.UndoError, false, "", "%s", msg)
	default:
		err = sleep(ctx, m.Delay)
	}
	p.r.end(e, err)
	return err
}

// mockApply answers a call from its mock: after the delay and the
// checkpoints, the error or the outputs.
func (p *provider) mockApply(ctx context.Context, action string, m *Mock, ev sdk.Events) (*sdk.Result, error) {
	if err := sleep(ctx, m.Delay); err != nil {
		return nil, err
	}
	for _, c := range m.Checkpoints {
		if err := ev.Checkpoint([]byte(c)); err != nil {
			return nil, err
		}
	}
	if m.Error != "" {
		msg := m.Message
		if msg == "" {
			msg = fmt.Sprintf("mock %s.%s fails with %s", m.Plugin, m.Action, m.Error)
		}
		return nil, sdk.Errorf(m.Error, m.Retryable, "", "%s", msg)
	}
	ps, err := p.inner.Schema(ctx)
	if err != nil {
		return nil, err
	}
	as, _ := ps.Action(action)
	outs, err := mockOutputs(as, m.Outputs)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "", "mock %s.%s: %v", m.Plugin, m.Action, err)
	}
	return &sdk.Result{Outputs: outs, UndoState: []byte("mock")}, nil
}

// mockOutputs is the mock's outputs as the action's output object: the
// attributes it leaves out are null.
func mockOutputs(as sdk.ActionSchema, given cty.Value) (cty.Value, error) {
	ty := as.OutputType()
	vals := map[string]cty.Value{}
	if given != cty.NilVal && !given.IsNull() {
		if !given.Type().IsObjectType() && !given.Type().IsMapType() {
			return cty.NilVal, fmt.Errorf("outputs must be an object")
		}
		for k, v := range given.AsValueMap() {
			at, ok := ty.AttributeTypes()[k]
			if !ok {
				return cty.NilVal, fmt.Errorf("the action has no output %q", k)
			}
			cv, err := convertTo(v, at)
			if err != nil {
				return cty.NilVal, fmt.Errorf("output %q: %w", k, err)
			}
			vals[k] = cv
		}
	}
	for k, at := range ty.AttributeTypes() {
		if _, ok := vals[k]; !ok {
			vals[k] = cty.NullVal(at)
		}
	}
	if len(vals) == 0 {
		return cty.EmptyObjectVal, nil
	}
	return cty.ObjectVal(vals), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

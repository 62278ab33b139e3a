package run

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// world is the state a test plugin changes: a set of applied effects and
// the order of applies and undos.
type world struct {
	mu      sync.Mutex
	applied map[string]bool // guarded by mu
	log     []string        // "apply X", "undo X"; guarded by mu
	fail    map[string]bool // ids whose apply fails (with partial effect)
	flaky   map[string]int  // ids failing (retryable) this many times first
	undoErr map[string]bool // ids whose undo fails
	keys    []string        // idempotency keys seen
	delay   time.Duration
	cur     int // attempts running now; guarded by mu
	maxCur  int // highest cur seen; guarded by mu
	undoCur int // undos running now; guarded by mu
	maxUndo int // highest undoCur seen; guarded by mu
	actCap  int // MaxConcurrency of t.do
}

func newWorld() *world {
	return &world{applied: map[string]bool{}, fail: map[string]bool{}, flaky: map[string]int{}, undoErr: map[string]bool{}}
}

func (w *world) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for k := range w.applied {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (w *world) events() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.log...)
}

// work takes w.delay (or until ctx is cancelled), counting itself in cur
// and the highest cur in top (both guarded by w.mu).
func (w *world) work(ctx context.Context, cur, top *int) error {
	w.mu.Lock()
	*cur++
	*top = max(*top, *cur)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		*cur--
		w.mu.Unlock()
	}()
	if w.delay <= 0 {
		return nil
	}
	select {
	case <-time.After(w.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// doAction applies effect `id`; rollback = native removes it again.
type doAction struct{ w *world }

func (a *doAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:   "do",
		Inputs: []sdk.Attribute{{Name: "id", Type: cty.String, Required: true}, {Name: "secret", Type: cty.String, Sensitive: true}},
		Outputs: []sdk.Attribute{
			{Name: "id", Type: cty.String},
			{Name: "token", Type: cty.String, Sensitive: true},
		},
		Capabilities:   sdk.Capabilities{NativeUndo: true},
		MaxConcurrency: a.w.actCap,
	}
}

func (a *doAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	id := req.Inputs.GetAttr("id").AsString()
	w := a.w
	if err := w.work(ctx, &w.cur, &w.maxCur); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = append(w.keys, req.IdempotencyKey)
	if w.flaky[id] > 0 {
		w.flaky[id]--
		return nil, sdk.Errorf(sdk.KindUnreachable, true, "", "%s: temporarily unreachable", id)
	}
	if w.fail[id] {
		// Partial effect, reported through the undo state.
		w.applied[id+".partial"] = true
		w.log = append(w.log, "apply "+id+".partial")
		return &sdk.Result{UndoState: []byte(id + ".partial")}, sdk.Errorf(sdk.KindConflict, false, "fix it", "%s failed", id)
	}
	w.applied[id] = true
	w.log = append(w.log, "apply "+id)
	return &sdk.Result{
		Outputs:   cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(id), "token": cty.StringVal("tok-" + id)}),
		UndoState: []byte(id),
	}, nil
}

func (a *doAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	w := a.w
	if err := w.work(ctx, &w.undoCur, &w.maxUndo); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	what := string(req.UndoState)
	if what == "" {
		return fmt.Errorf("no undo state")
	}
	if w.undoErr[strings.TrimSuffix(what, ".partial")] {
		return sdk.Errorf(sdk.KindUnreachable, false, "", "undo of %s failed", what)
	}
	if !w.applied[what] {
		return fmt.Errorf("undo of %s: not applied", what)
	}
	delete(w.applied, what)
	w.log = append(w.log, "undo "+what)
	return nil
}

// removeAction is a rollback-block action: it removes effect `id`.
type removeAction struct{ w *world }

func (a *removeAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "remove", Inputs: []sdk.Attribute{{Name: "id", Type: cty.String, Required: true}}}
}

func (a *removeAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	id := req.Inputs.GetAttr("id").AsString()
	a.w.mu.Lock()
	defer a.w.mu.Unlock()
	delete(a.w.applied, id)
	delete(a.w.applied, id+".partial")
	a.w.log = append(a.w.log, "undo "+id)
	return nil, nil
}

type providers map[string]sdk.Provider

func (p providers) Provider(_ context.Context, name string) (sdk.Provider, error) {
	if x, ok := p[name]; ok {
		return x, nil
	}
	return nil, fmt.Errorf("unknown plugin %s", name)
}

func testProviders(w *world) providers {
	return providers{"t": sdk.Local(&sdk.Plugin{Name: "t", Version: "1.0.0", Actions: []sdk.Action{&doAction{w}, &removeAction{w}}})}
}

// longAction checkpoints, then waits until cancelled; on an attempt that
// carries a checkpoint it finishes at once. It records what it was given.
type longAction struct {
	mu      sync.Mutex
	keys    []string // guarded by mu
	cps     []string // checkpoints received; guarded by mu
	started chan struct{}
}

func (a *longAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "long", Outputs: []sdk.Attribute{{Name: "resumed_from", Type: cty.String}}}
}

func (a *longAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	a.mu.Lock()
	a.keys = append(a.keys, req.IdempotencyKey)
	a.cps = append(a.cps, string(req.Checkpoint))
	a.mu.Unlock()
	if req.Checkpoint != nil {
		return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"resumed_from": cty.StringVal(string(req.Checkpoint))})}, nil
	}
	if err := ev.Checkpoint([]byte("cp-1")); err != nil {
		return nil, err
	}
	if err := ev.Checkpoint([]byte("cp-2")); err != nil {
		return nil, err
	}
	close(a.started)
	<-ctx.Done()
	return nil, ctx.Err()
}

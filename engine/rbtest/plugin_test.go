package rbtest_test

import (
	"context"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// world is what the demo plugin changed: the names put and not undone.
type world struct {
	mu    sync.Mutex
	names map[string]bool
}

func (w *world) set(name string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.names[name] = true
	} else {
		delete(w.names, name)
	}
}

func (w *world) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.names)
}

// builtins hands out the demo plugin, whose actions act on w.
type builtins struct{ w *world }

func (builtins) Names() []string { return []string{"demo"} }

func (b builtins) Get(name string) (*sdk.Plugin, bool) {
	if name != "demo" {
		return nil, false
	}
	return &sdk.Plugin{Name: "demo", Version: "0.1.0", Actions: []sdk.Action{&put{b.w}, &remove{b.w}, note{}, check{}}}, true
}

// put records a name; native undo removes it.
type put struct{ w *world }

func (*put) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "put", Inputs: []sdk.Attribute{{Name: "name", Type: cty.String, Required: true}},
		Outputs:      []sdk.Attribute{{Name: "id", Type: cty.String}},
		Capabilities: sdk.Capabilities{NativeUndo: true}}
}

func (p *put) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	n := req.Inputs.GetAttr("name").AsString()
	p.w.set(n, true)
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(n)}), UndoState: []byte(n)}, nil
}

func (p *put) Undo(_ context.Context, req *sdk.UndoRequest, _ sdk.Events) error {
	p.w.set(req.Inputs.GetAttr("name").AsString(), false)
	return nil
}

// remove removes a name (a rollback action).
type remove struct{ w *world }

func (*remove) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "remove", Inputs: []sdk.Attribute{{Name: "id", Type: cty.String, Required: true}}}
}

func (r *remove) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	r.w.set(req.Inputs.GetAttr("id").AsString(), false)
	return &sdk.Result{}, nil
}

// note changes something that cannot be undone.
type note struct{}

func (note) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "note", Inputs: []sdk.Attribute{{Name: "text", Type: cty.String, Required: true}}}
}

func (note) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{}, nil
}

// check changes nothing.
type check struct{}

func (check) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "check", Outputs: []sdk.Attribute{{Name: "ok", Type: cty.Bool}},
		Capabilities: sdk.Capabilities{ReadOnly: true}}
}

func (check) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"ok": cty.True})}, nil
}

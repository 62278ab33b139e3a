package runbooks_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/sdk"
)

// runbook is a shipped runbook loaded with its variables, and the journal
// store its runs go to.
type runbook struct {
	cfg   *lang.Config
	vals  map[string]cty.Value
	store *journal.LocalStore
}

// loadRunbook loads file (in this directory) with vars given as name=value
// arguments and as variable files.
func loadRunbook(t *testing.T, file string, vars map[string]string, varFiles ...string) *runbook {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := lang.LoadSources(map[string][]byte{file: src})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var args []string
	for k, v := range vars {
		args = append(args, k+"="+v)
	}
	sort.Strings(args)
	vals, diags := cfg.ResolveVariables(lang.VarSources{Args: args, Files: varFiles})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return &runbook{cfg: cfg, vals: vals, store: journal.NewLocal(t.TempDir())}
}

// apply runs the runbook (or resumes run resume) through the engine with
// the plugins providers returns for the run's id; retry waits are skipped.
func (r *runbook) apply(t *testing.T, ctx context.Context, resume string, providers func(runID string) run.Providers) *run.Result {
	t.Helper()
	var j journal.Journal
	var st *journal.State
	id := resume
	if resume == "" {
		meta := &journal.Meta{Started: time.Now()}
		var err error
		if j, err = r.store.Create(meta); err != nil {
			t.Fatal(err)
		}
		id = meta.ID
	} else {
		var err error
		if j, st, err = r.store.Open(resume); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(&journal.Record{Type: journal.RecRunResumed, Meta: &journal.Meta{ID: resume}}); err != nil {
			t.Fatal(err)
		}
	}
	defer j.Close()
	res, err := run.Apply(ctx, run.FromConfig(&lang.Scope{Config: r.cfg, Vars: r.vals, RunID: id}),
		run.Options{RunID: id, Providers: providers(id), Journal: j, Resume: st,
			Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// stubProviders hands the engine, in-process, a new plugin from plugins
// each time one is asked for by name. It can fail one step's first apply,
// watch the steps' progress, and keeps the approval prompts shown, in
// order.
type stubProviders struct {
	plugins map[string]func() *sdk.Plugin
	failAt  string
	// onProgress, when set, is called on each progress event of an apply.
	onProgress func(action, unit string, cur int64)

	mu      sync.Mutex // guards failed and prompts
	failed  bool
	prompts []string
}

// stubCore is a core plugin made of stub actions (approveStub, ...).
func stubCore(actions ...sdk.Action) func() *sdk.Plugin {
	return func() *sdk.Plugin { return &sdk.Plugin{Name: "core", Version: "0", Actions: actions} }
}

func (p *stubProviders) Provider(_ context.Context, name string) (sdk.Provider, error) {
	if plugin, ok := p.plugins[name]; ok {
		return &stubWatched{Provider: sdk.Local(plugin()), p: p}, nil
	}
	return nil, fmt.Errorf("no plugin %q", name)
}

func (p *stubProviders) forRun(string) run.Providers { return p }

type stubWatched struct {
	sdk.Provider
	p *stubProviders
}

func (w *stubWatched) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	w.p.mu.Lock()
	fail := w.p.failAt != "" && !w.p.failed && strings.Contains(req.IdempotencyKey, "/"+w.p.failAt+"/")
	if fail {
		w.p.failed = true
	}
	if action == "approve" {
		w.p.prompts = append(w.p.prompts, req.Inputs.GetAttr("prompt").AsString())
	}
	w.p.mu.Unlock()
	if fail {
		return nil, sdk.Errorf(sdk.KindConflict, false, "injected", "injected failure")
	}
	if w.p.onProgress != nil {
		ev = &progressWatch{Events: ev, action: action, f: w.p.onProgress}
	}
	return w.Provider.Apply(ctx, action, req, ev)
}

type progressWatch struct {
	sdk.Events
	action string
	f      func(action, unit string, cur int64)
}

func (c *progressWatch) Progress(cur, total int64, unit string) {
	c.Events.Progress(cur, total, unit)
	c.f(c.action, unit, cur)
}

// approveStub is a core.approve that approves at once.
type approveStub struct{}

func (approveStub) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "approve", Inputs: []sdk.Attribute{{Name: "prompt", Type: cty.String, Required: true}, {Name: "timeout", Type: cty.String}},
		Outputs: []sdk.Attribute{{Name: "approved_by", Type: cty.String}, {Name: "at", Type: cty.String}}}
}

func (approveStub) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"approved_by": cty.StringVal("test"), "at": cty.StringVal("now")})}, nil
}

// assertStub is core.assert.
type assertStub struct{}

func (assertStub) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "assert", Inputs: []sdk.Attribute{{Name: "condition", Type: cty.Bool, Required: true}, {Name: "message", Type: cty.String}}}
}

func (assertStub) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	if !req.Inputs.GetAttr("condition").True() {
		return nil, sdk.Errorf(sdk.KindConflict, false, "", "%s", req.Inputs.GetAttr("message").AsString())
	}
	return &sdk.Result{}, nil
}

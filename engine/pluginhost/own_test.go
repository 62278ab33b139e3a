package pluginhost

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// A builtin's action schemas come from this binary's own copy: checking a
// runbook does not wait for (or even need) the plugin's process.
func TestBuiltinSchemaWithoutProcess(t *testing.T) {
	h := New(Options{Builtins: builtin.All(), SelfExe: "/nonexistent/runbook"})
	defer h.Close()
	a, ok, err := h.ActionSchema("core", "noop")
	if err != nil || !ok {
		t.Fatalf("ActionSchema(core, noop) = %v, %v", ok, err)
	}
	if a.Name != "noop" {
		t.Errorf("schema of %q, want noop", a.Name)
	}
	if _, ok, err := h.ActionSchema("core", "nope"); err != nil || ok {
		t.Errorf("ActionSchema(core, nope) = %v, %v; want not found, no error", ok, err)
	}
	// Its version and checksum are this binary's, known before any start.
	if v, _ := h.Info("core"); v == "" {
		t.Error("Info(core) has no version before the plugin started")
	}
	// The run itself does need the process, and says so.
	if _, err := h.Provider(context.Background(), "core"); err == nil {
		t.Error("Provider(core) started a plugin from a binary that does not exist")
	}
}

// A builtin replaced by an explicit source is asked, not assumed.
func TestReplacedBuiltinSchemaAsksTheProcess(t *testing.T) {
	h := New(Options{Builtins: builtin.All(), SelfExe: testPlugin, Sources: map[string]string{"core": "/nonexistent/runbook-plugin-core"}, AllowUnlocked: true})
	defer h.Close()
	if _, _, err := h.ActionSchema("core", "noop"); err == nil {
		t.Error("ActionSchema(core) answered from the builtin although its source is replaced")
	}
}

// The process's schema must agree with this binary's copy.
func TestSameSchema(t *testing.T) {
	own := &sdk.PluginSchema{Version: "1.0", Actions: map[string]sdk.ActionSchema{"a": {Name: "a"}, "b": {Name: "b"}}}
	for _, tc := range []struct {
		name string
		got  *sdk.PluginSchema
		want string // "" = agrees
	}{
		{"same", &sdk.PluginSchema{Version: "1.0", Actions: map[string]sdk.ActionSchema{"a": {}, "b": {}}}, ""},
		{"version", &sdk.PluginSchema{Version: "1.1", Actions: map[string]sdk.ActionSchema{"a": {}, "b": {}}}, `version "1.1"`},
		{"fewer actions", &sdk.PluginSchema{Version: "1.0", Actions: map[string]sdk.ActionSchema{"a": {}}}, "other actions"},
		{"other actions", &sdk.PluginSchema{Version: "1.0", Actions: map[string]sdk.ActionSchema{"a": {}, "c": {}}}, "other actions"},
	} {
		err := sameSchema(own, tc.got)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// The engine knows no plugin of its own: a host given no Builtins has none.
func TestNoBuiltinsGiven(t *testing.T) {
	h := New(Options{Dirs: []string{t.TempDir()}})
	defer h.Close()
	for _, n := range h.Names() {
		if n == "core" {
			t.Fatalf("Names() = %v; a host without Builtins lists core", h.Names())
		}
	}
	if _, ok, err := h.ActionSchema("core", "noop"); ok || err == nil {
		t.Errorf("ActionSchema(core, noop) = %v, %v; want not found", ok, err)
	}
}

// fakeBuiltins is a Builtins of one plugin.
type fakeBuiltins struct{ p *sdk.Plugin }

func (f fakeBuiltins) Names() []string { return []string{f.p.Name} }
func (f fakeBuiltins) Get(name string) (*sdk.Plugin, bool) {
	return f.p, name == f.p.Name
}

// A builtin run in-process is closed (its Close hook) with the host.
func TestInProcessBuiltinClosedWithHost(t *testing.T) {
	var closed atomic.Int32
	p := builtin.All()
	core, _ := p.Get("core")
	core.Close = func() error { closed.Add(1); return nil }
	h := New(Options{InProcess: true, Builtins: fakeBuiltins{core}})
	prov, err := h.Provider(context.Background(), "core")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Apply(context.Background(), "noop", &sdk.ApplyRequest{Inputs: cty.EmptyObjectVal}, nil); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if closed.Load() != 1 {
		t.Fatalf("Close hook ran %d times, want 1", closed.Load())
	}
}

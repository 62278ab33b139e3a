package lang_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/plugins/core"
	"github.com/runbookdev/runbook/sdk"
)

// coreSchemas serves the real builtin core plugin's schemas in-process.
type coreSchemas struct{ p *sdk.Plugin }

func (c coreSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	if plugin != c.p.Name {
		return sdk.ActionSchema{}, false, nil
	}
	s, ok := sdk.SchemaOf(c.p).Action(action) // capabilities derived
	return s, ok, nil
}

// The shipped examples are valid against the real core plugin and plan
// cleanly with their defaults.
func TestExamples(t *testing.T) {
	all, _ := filepath.Glob("../../runbooks/examples/*")
	var files []string
	for _, f := range all {
		if lang.IsRunbookFile(f) {
			files = append(files, f)
		}
	}
	if len(files) < 3 {
		t.Fatalf("want at least 3 examples, found %d", len(files))
	}
	src := coreSchemas{core.New()}
	prov := sdk.Local(core.New())
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, diags := lang.Load(f)
			diags = append(diags, cfg.Check(src)...)
			var args []string
			if _, ok := cfg.Variables["url"]; ok {
				args = append(args, "url=http://127.0.0.1:9")
			}
			vars, d := cfg.ResolveVariables(lang.VarSources{Args: args})
			diags = append(diags, d...)
			if len(diags) > 0 {
				var b strings.Builder
				cfg.WriteDiagnostics(&b, diags, 0, false)
				t.Fatal(b.String())
			}
			p, diags := cfg.Plan(context.Background(), lang.PlanOptions{
				Vars: vars, Schemas: src,
				Provider: func(context.Context, string) (sdk.Provider, error) { return prov, nil },
			})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if err := p.WriteText(io.Discard); err != nil {
				t.Fatal(err)
			}
		})
	}
}

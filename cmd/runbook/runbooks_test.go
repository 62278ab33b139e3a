package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// builtinSchemas serves every builtin plugin's schemas in-process.
type builtinSchemas struct{}

func (builtinSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	p, ok := builtin.Get(plugin)
	if !ok {
		return sdk.ActionSchema{}, false, os.ErrNotExist
	}
	s, ok := sdk.SchemaOf(p).Action(action)
	return s, ok, nil
}

// Every runbook we ship is canonically formatted and valid against the real
// schemas of the builtin plugins: the reviewed files users copy must not rot
// when a plugin's schema changes.
func TestShippedRunbooks(t *testing.T) {
	var files []string
	for _, pat := range []string{"../../runbooks/*", "../../runbooks/examples/*"} {
		m, _ := filepath.Glob(pat)
		for _, f := range m {
			if lang.IsRunbookFile(f) {
				files = append(files, f)
			}
		}
	}
	if len(files) < 8 {
		t.Fatalf("found only %d runbooks", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if strings.HasSuffix(f, ".hcl") {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if got := hclwrite.Format(src); string(got) != string(src) {
					t.Errorf("%s is not formatted: run `runbook fmt %s`", f, f)
				}
			}
			cfg, diags := lang.Load(f)
			if !diags.HasErrors() {
				diags = append(diags, cfg.Check(builtinSchemas{})...)
			}
			if len(diags) > 0 {
				var b strings.Builder
				cfg.WriteDiagnostics(&b, diags, 0, false)
				t.Fatal(b.String())
			}
		})
	}
}

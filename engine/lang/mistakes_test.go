package lang

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Runbooks with the mistakes a new user makes. The golden files hold the
// exact messages they see; each must say what to fix.
func TestMistakes(t *testing.T) {
	files, _ := filepath.Glob("testdata/mistakes/*.hcl")
	if len(files) < 3 {
		t.Fatalf("want at least 3 mistake runbooks, have %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			cfg, diags := LoadSources(map[string][]byte{name: src})
			diags = append(diags, cfg.Check(testSchemas)...)
			_, vd := cfg.ResolveVariables(VarSources{})
			diags = append(diags, vd...)
			out := render(cfg, diags)
			if strings.Contains(out, "panic") || len(diags) == 0 {
				t.Fatalf("unexpected:\n%s", out)
			}
			golden(t, strings.TrimSuffix(f[len("testdata/"):], ".hcl")+".golden", out)
		})
	}
}

package lang

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeparateRunbooks(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		reason string // "" = one runbook
	}{
		{"shared names", map[string]string{"a.hcl": "step \"core.noop\" \"a\" {\n}\n", "b.hcl": "step \"core.noop\" \"b\" {\n  depends_on = [step.a]\n}\n"}, ""},
		{"one runbook block", map[string]string{"a.hcl": "runbook \"x\" {\n}\n", "b.hcl": "variable \"v\" {\n}\n"}, ""},
		{"a name twice in one file", map[string]string{"a.hcl": "step \"core.noop\" \"a\" {\n}\nstep \"core.noop\" \"a\" {\n}\n", "b.hcl": "locals {\n  x = 1\n}\n"}, ""},
		{"two runbook blocks", map[string]string{"a.hcl": "runbook \"x\" {\n}\n", "b.runbook.json": `{"runbook": {"y": {}}}`}, "a.hcl and b.runbook.json each have a runbook block"},
		{"a local in two files", map[string]string{"a.hcl": "locals {\n  x = 1\n}\n", "b.hcl": "locals {\n  x = 2\n}\n"}, `local "x" is declared in both a.hcl and b.hcl`},
		{"a variable in two files", map[string]string{"a.hcl": "variable \"v\" {\n}\n", "b.runbook.json": `{"variable": {"v": {}}}`}, `variable "v" is declared in both a.hcl and b.runbook.json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, src := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			files, err := DirFiles(dir)
			if err != nil || len(files) != len(tt.files) {
				t.Fatalf("DirFiles = %v, %v", files, err)
			}
			sep, why := SeparateRunbooks(files)
			if sep != (tt.reason != "") || !strings.Contains(why, tt.reason) {
				t.Errorf("SeparateRunbooks = %v, %q; want reason %q", sep, why, tt.reason)
			}
		})
	}
}

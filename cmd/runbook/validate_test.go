package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestValidateDirOfRunbooks: a directory whose files cannot form one
// runbook (a step declared in two files, or two runbook blocks) is
// validated file by file, saying so; files that form one runbook are
// validated together (a step may depend on a step of another file), also
// saying so.
func TestValidateDirOfRunbooks(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		code  int
		want  []string
	}{
		{
			name: "one runbook",
			files: map[string]string{
				"a.hcl": "step \"core.noop\" \"a\" {\n}\n",
				"b.hcl": "step \"core.noop\" \"b\" {\n  depends_on = [step.a]\n}\n",
			},
			want: []string{"its 2 files form one runbook", ": the runbook is valid."},
		},
		{
			name: "same step in two files",
			files: map[string]string{
				"a.hcl": "step \"core.noop\" \"a\" {\n}\n",
				"b.hcl": "step \"core.noop\" \"a\" {\n  with = { values = 1 }\n}\n",
				"c.hcl": "step \"core.noop\" \"a\" {\n  with = { nope = 1 }\n}\n",
			},
			code: exitError,
			want: []string{`step "a" is declared in both a.hcl and b.hcl`, "each file is validated as its own runbook", "a.hcl: the runbook is valid.", "b.hcl: the runbook is valid.", `c.hcl:2:12: Error: Unsupported input "nope"`},
		},
		{
			name: "two runbook blocks",
			files: map[string]string{
				"deploy.hcl":  "runbook \"deploy\" {\n}\nstep \"core.noop\" \"a\" {\n}\n",
				"restore.hcl": "runbook \"restore\" {\n}\nstep \"core.noop\" \"b\" {\n}\n",
			},
			want: []string{"deploy.hcl and restore.hcl each have a runbook block", "deploy.hcl: the runbook is valid.", "restore.hcl: the runbook is valid."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			var stdout, stderr bytes.Buffer
			err := runValidate(&stdout, &stderr, []string{dir}, false)
			got := stdout.String() + stderr.String()
			if code := langExitCode(err); code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestValidateDirOfRunbooksJSON: with -json the rule applied is a warning.
func TestValidateDirOfRunbooksJSON(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.hcl": "runbook \"a\" {\n}\n",
		"b.hcl": "runbook \"b\" {\n}\n",
	})
	var stdout, stderr bytes.Buffer
	if err := runValidate(&stdout, &stderr, []string{dir}, true); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	var rep struct {
		Valid       bool
		Diagnostics []struct{ Severity, Summary, Detail string }
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Valid || len(rep.Diagnostics) != 1 || rep.Diagnostics[0].Severity != "warning" || !strings.Contains(rep.Diagnostics[0].Detail, "each have a runbook block") {
		t.Fatalf("report = %+v", rep)
	}
}

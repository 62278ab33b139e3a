package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Canaries of TestEnvCanary: the state key, and sensitive variables given
// in RUNBOOK_VAR_* holding characters that %q (pw) and a URL's
// percent-encoding (tok) change.
const (
	canaryStateKey = "StateKey-Canary-7d21a0"
	canaryVarPw    = "VarPw\"Canary\x7f#b83c"
	canaryVarTok   = "Tok Canary 5e61"
)

const envRunbook = `
variable "dir" { type = string }
variable "pw" {
  type      = string
  sensitive = true
}
variable "tok" {
  type      = string
  sensitive = true
}
step "core.exec" "env" {
  with = {
    command = "sh"
    args    = ["-c", "env > '${var.dir}/env.txt'"]
    env     = { GIVEN = "given-value" }
  }
}
step "core.exec" "quoted" {
  with       = { command = "no-such-command-${var.pw}" }
  on_failure = "continue"
  depends_on = [step.env]
}
step "core.http" "encoded" {
  with       = { url = "http://127.0.0.1:1/${var.tok}", timeout = "2s" }
  on_failure = "continue"
  depends_on = [step.env]
}
`

// TestEnvCanary: a core.exec command (and so the plugin process that runs
// it) sees neither the state key nor any RUNBOOK_VAR_*, and a secret quoted
// with %q in a "not found" error or percent-encoded in the URL an HTTP error
// quotes is masked in the output and the state directory.
func TestEnvCanary(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), envRunbook)
	env := []string{"RUNBOOK_STATE_KEY=" + canaryStateKey, "RUNBOOK_VAR_pw=" + canaryVarPw, "RUNBOOK_VAR_tok=" + canaryVarTok}
	r := runbook(t, dir, env, "apply", "-auto-approve", "-json", "-var", "dir="+dir, "main.hcl")
	b, err := os.ReadFile(filepath.Join(dir, "env.txt"))
	if err != nil {
		t.Fatalf("the exec step wrote no environment (exit %d): %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	childEnv := string(b)
	for _, leak := range []string{"RUNBOOK_STATE_KEY", "RUNBOOK_VAR_", canaryStateKey, "VarPw", "Tok Canary"} {
		if strings.Contains(childEnv, leak) {
			t.Errorf("the core.exec child's environment holds %q", leak)
		}
	}
	for _, kept := range []string{"PATH=", "HOME=", "GIVEN=given-value"} {
		if !strings.Contains(childEnv, kept) {
			t.Errorf("the core.exec child's environment lacks %q", kept)
		}
	}
	if !strings.Contains(r.stdout+r.stderr, "not found") {
		t.Errorf("the quoted step did not fail with not found:\n%s\n%s", r.stdout, r.stderr)
	}
	out := r.stdout + r.stderr
	for _, cmd := range [][]string{{"runs", "show", "-json"}, {"runs", "show"}} {
		id := runsLs(t, dir)[0].ID
		r := runbook(t, dir, env, append(cmd, id)...)
		out += r.stdout + r.stderr
	}
	check := func(what, s string) {
		t.Helper()
		for _, c := range []string{canaryStateKey, "Canary\\x7f", "b83c", "Canary%205e61", "5e61"} {
			if strings.Contains(s, c) {
				t.Errorf("canary %q in clear in %s", c, what)
			}
		}
	}
	check("the commands' output", out)
	filepath.WalkDir(filepath.Join(dir, ".runbook"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		check(p, string(b))
		return nil
	})
	if t.Failed() {
		fmt.Println(out)
	}
}

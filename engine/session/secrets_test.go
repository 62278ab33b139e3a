package session

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"

	"context"
	"github.com/runbookdev/runbook/engine/event"
	"os"
	"path/filepath"
	"testing"

	"github.com/runbookdev/runbook/engine/journal"
)

const secretFileRunbook = `
variable "dir" { type = string }
variable "pw" {
  type      = string
  sensitive = true
}
step "core.file" "secret" {
  with     = { path = "${var.dir}/secret", content = var.pw }
  rollback = native
}
`

// TestLaterRollbackAsksForSecretsAgain: a run made without any state key
// journals no secret; a later rollback given the sensitive variable again
// rebuilds the undo's inputs and succeeds.
func TestLaterRollbackAsksForSecretsAgain(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, secretFileRunbook)
	s := newSession(t, dir, nil)
	out, err := applier(t, s, dir, main)("pw=canary-pw-0001")
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunSucceeded {
		t.Fatalf("state = %s (%v)", out.Result.State, out.Result.Err)
	}
	rollsBackTheFile(t, s, dir, "pw=canary-pw-0001")
}

// rollsBackTheFile rolls back the latest run with the -var arguments args
// and checks that the secret file is gone.
func rollsBackTheFile(t *testing.T, s *Session, dir string, args ...string) {
	t.Helper()
	back, err := s.Rollback(context.Background(), "", vars(args...), RollbackOptions{})
	if err != nil {
		fatal(t, err)
	}
	if back.Result.State != journal.RunRolledBack {
		t.Fatalf("rollback state = %s (%v)", back.Result.State, back.Result.Err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); !os.IsNotExist(err) {
		t.Fatalf("secret file still there after rollback: %v", err)
	}
}

// TestFirstApplyCreatesTheStateKey: with no key in the environment the
// first apply creates one (0600) in the user's config directory and seals
// the run's secrets with it; a later rollback needs nothing more. A
// session with another key is told which key sealed the run and how to
// supply it.
func TestFirstApplyCreatesTheStateKey(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, secretFileRunbook)
	cfg := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": cfg}
	rec := &event.Recorder{}
	s := newSessionEnv(t, dir, rec, env)
	out, err := applier(t, s, dir, main)("pw=canary-pw-0002")
	if err != nil {
		fatal(t, err)
	}
	keyFile := filepath.Join(cfg, "runbook", "state.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state key: %v, %v", fi, err)
	}
	fp, src := s.KeyInfo()
	ri, err := s.Run(out.RunID)
	if err != nil || ri.State.Meta.Key != fp || fp == "" || src != keyFile {
		t.Fatalf("run key = %q, session key %q from %q (%v)", ri.State.Meta.Key, fp, src, err)
	}
	if !strings.Contains(warnings(rec), keyFile) {
		t.Errorf("creating the key is not reported: %q", warnings(rec))
	}
	if !bytes.Contains(readTree(t, filepath.Join(dir, ".runbook")), []byte("sealed")) || bytes.Contains(readTree(t, filepath.Join(dir, ".runbook")), []byte("canary-pw-0002")) {
		t.Fatal("the secret is not sealed in the journal")
	}

	// Another key: the run's secrets cannot be read, and the user is told
	// which key sealed them.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := journal.NewKeyFile(other); err != nil {
		t.Fatal(err)
	}
	rec2 := &event.Recorder{}
	s2 := newSessionEnv(t, dir, rec2, map[string]string{"RUNBOOK_STATE_KEY_FILE": other})
	_, err = s2.Rollback(context.Background(), "", vars(), RollbackOptions{})
	var de *DiagError
	if !errors.As(err, &de) || !strings.Contains(de.Diags.Error(), "pw") {
		t.Fatalf("rollback with another key and no pw = %v, want the variable asked for", err)
	}
	if w := warnings(rec2); !strings.Contains(w, fp) || !strings.Contains(w, "RUNBOOK_STATE_KEY_FILE") {
		t.Errorf("the warning does not say which key sealed the run: %q", w)
	}

	// The user's key: nothing to give again.
	rollsBackTheFile(t, newSessionEnv(t, dir, nil, env), dir)
}

func warnings(rec *event.Recorder) string {
	var b strings.Builder
	for _, e := range rec.Events() {
		if e.Type == event.Warning {
			b.WriteString(e.Message + "\n")
		}
	}
	return b.String()
}

// readTree is every file under dir, concatenated.
func readTree(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		all = append(all, b...)
		return err
	})
	return all
}

// TestResumeRebuildsUndoInputs: a resumed run keeps a finished step whose
// secret was not stored; when the run then fails and rolls back, that
// step's undo gets the secret given to resume.
func TestResumeRebuildsUndoInputs(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	src := secretFileRunbook + `
variable "fail" {
  type    = string
  default = ""
}
step "core.noop" "check" {
  with       = { fail = var.fail }
  on_failure = "POLICY"
  depends_on = [step.secret]
}
`
	write(t, main, strings.ReplaceAll(src, "POLICY", "abort"))
	s := newSession(t, dir, nil)
	out, err := applier(t, s, dir, main)("pw=canary-pw-0003", "fail=boom")
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunAborted {
		t.Fatalf("state = %s (%v)", out.Result.State, out.Result.Err)
	}
	// The check now rolls back when it fails, and fails again.
	write(t, main, strings.ReplaceAll(src, "POLICY", "rollback"))
	res, err := s.Resume(context.Background(), "", vars("pw=canary-pw-0003", "fail=again"))
	if err != nil {
		fatal(t, err)
	}
	if res.Result.State != journal.RunRolledBack {
		t.Fatalf("resume = %s (%v)", res.Result.State, res.Result.Err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); !os.IsNotExist(err) {
		t.Fatalf("secret file still there after the rollback: %v", err)
	}
}

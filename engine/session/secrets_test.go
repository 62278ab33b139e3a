package session

import (
	"context"
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
	back, err := s.Rollback(context.Background(), "", vars("pw=canary-pw-0001"))
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

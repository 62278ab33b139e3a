package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const inflightRunbook = `
runbook "inflight" {
  lock = "inflight"
}
variable "ledger" {
  type = string
}
step "ledger.apply" "first" {
  with     = { ledger = var.ledger, id = "first" }
  rollback = native
}
step "ledger.apply" "slow" {
  with       = { ledger = var.ledger, id = "slow", sleep_ms = 2000 }
  depends_on = [step.first]
  rollback   = native
}
`

// TestRollbackAfterCrashMidStep: the engine is killed (kill -9, plugins
// included) while a step that has acted is still running; `runbook
// rollback` then undoes that step too, not only the finished one.
func TestRollbackAfterCrashMidStep(t *testing.T) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	writeLedgerRunbook(t, dir, inflightRunbook)
	code := startKillWhen(t, dir, func() bool { return ledgerCounts(t, ledger)["slow"] > 0 }, 100*time.Millisecond,
		"apply", "-auto-approve", "-var", "ledger="+ledger, "main.hcl")
	if code != -1 {
		t.Fatalf("apply was not killed mid-step (exit %d)", code)
	}
	runs := journalRuns(t, dir)
	if len(runs) != 1 || runs[0].State != "running" {
		t.Fatalf("runs %+v, want one left running", runs)
	}
	r := runbook(t, dir, nil, "rollback", "-var", "ledger="+ledger)
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "rolled back") {
		t.Fatalf("rollback: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	counts := ledgerCounts(t, ledger)
	for _, id := range []string{"undo slow", "undo first"} {
		if counts[id] != 1 {
			t.Errorf("%q in the ledger %d times, want 1 (ledger %v)", id, counts[id], counts)
		}
	}
}

const driftRunbook = `
runbook "drift" {
  lock = "drift"
}
variable "dir" {
  type = string
}
step "core.file" "conf" {
  with     = { path = "${var.dir}/app.conf", content = "from the step\n" }
  rollback = native
}
`

// TestRollbackDriftedFile: a file changed after the step is not destroyed
// by a later rollback (exit 3, kind conflict naming the file, the change
// kept); rollback -force undoes it.
func TestRollbackDriftedFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	write(t, filepath.Join(dir, "main.hcl"), driftRunbook)
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "dir="+dir, "main.hcl"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	write(t, conf, "edited by hand later\n")
	r := runbook(t, dir, nil, "rollback", "-var", "dir="+dir)
	out := r.stdout + r.stderr
	if r.code != 3 || !strings.Contains(out, "conflict") || !strings.Contains(out, conf) || !strings.Contains(out, "content was changed") {
		t.Fatalf("rollback of a drifted file: exit %d, want 3 with a conflict naming %s\n%s", r.code, conf, out)
	}
	if b, _ := os.ReadFile(conf); string(b) != "edited by hand later\n" {
		t.Fatalf("the refused rollback changed the file: %q", b)
	}
	r = runbook(t, dir, nil, "rollback", "-force", "-var", "dir="+dir)
	if r.code != 0 {
		t.Fatalf("rollback -force: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("rollback -force left the file: %v", err)
	}
}

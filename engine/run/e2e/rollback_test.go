package e2e

import (
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

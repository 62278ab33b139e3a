package approval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/runbookdev/runbook/plugins/core"
)

// TestWriteWhereCoreApproveReads: the answer lands where a waiting
// core.approve step looks for it (its idempotency key is RUN/STEP/ATTEMPT),
// whole, with who answered.
func TestWriteWhereCoreApproveReads(t *testing.T) {
	dir := t.TempDir()
	for _, step := range []string{"go_live", `db["cozy"]`} {
		want, err := core.ApprovalPath(dir, "01RUN/"+step+"/2")
		if err != nil {
			t.Fatal(err)
		}
		if got := Path(dir, "01RUN", step); got != want {
			t.Errorf("Path(%s) = %s, core.approve reads %s", step, got, want)
		}
		if err := Write(dir, "01RUN", step, "alice", step == "go_live"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(want)
		if err != nil {
			t.Fatal(err)
		}
		var ap core.Approval
		if err := json.Unmarshal(b, &ap); err != nil || ap.ApprovedBy != "alice" || ap.Approved != (step == "go_live") || ap.At == "" {
			t.Errorf("%s: %s (%v)", step, b, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "approvals", "*", "*.tmp")); len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

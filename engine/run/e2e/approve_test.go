package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const approveRunbook = `
step "core.approve" "go_live" {
  with = { prompt = "Switch DNS?", timeout = "60s" }
}
step "core.noop" "after" {
  with = { values = step.go_live.outputs.approved_by }
}
`

// TestApprove: `runbook approve RUN STEP` releases a waiting core.approve.
func TestApprove(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), approveRunbook)
	cmd := exec.Command(bin, "apply", "-auto-approve", "main.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if runs := journalRuns(t, dir); len(runs) == 1 {
			id = runs[0].ID
		}
	}
	if id == "" {
		t.Fatal("the run did not start")
	}
	if r := runbook(t, dir, nil, "approve", id[:10], "go_live"); r.code != 0 {
		t.Fatalf("approve: %d %s", r.code, r.stderr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("apply: %v\n%s\n%s", err, so.String(), se.String())
	}
	r := runbook(t, dir, nil, "runs", "show", id)
	if !strings.Contains(r.stdout, "go_live") || !strings.Contains(r.stdout, "approved_by") {
		t.Errorf("runs show:\n%s", r.stdout)
	}
}

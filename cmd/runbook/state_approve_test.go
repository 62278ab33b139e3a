package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/testenv"
)

// TestApprovePostgres: with a database state, `runbook approve` (on the
// machine the run waits on) finds the run in the database, and the
// waiting core.approve step goes on; `runs ls -status running` shows the
// run while it waits.
func TestApprovePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	bin := runbookBinary(t)
	db := testenv.Postgres(t)
	if _, err := journal.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "main.hcl"), `
step "core.approve" "gate" {
  with = { prompt = "go?" }
}
step "core.exec" "after" {
  with       = { command = "touch", args = ["after.txt"] }
  depends_on = [step.gate]
}
`)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "RUNBOOK_SELF_EXE=" + bin, "RUNBOOK_STATE=" + db, "RUNBOOK_STATE_KEY_FILE=none"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNBOOK_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	var applyOut syncBuf
	apply := exec.Command(bin, "apply", "-auto-approve", "main.hcl")
	apply.Dir, apply.Env, apply.Stdout, apply.Stderr = dir, env, &applyOut, &applyOut
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- apply.Wait() }()
	t.Cleanup(func() { _ = apply.Process.Kill() })
	runbook := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("runbook %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if out := runbook("runs", "ls", "-status", "running"); strings.Contains(out, "running") {
			id = strings.Fields(strings.Split(out, "\n")[1])[0]
		}
	}
	if id == "" {
		t.Fatalf("the run never showed as running:\n%s", applyOut.String())
	}
	if out := runbook("approve", id[:12], "gate"); !strings.Contains(out, "Approved step gate of run "+id) {
		t.Fatalf("approve:\n%s", out)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, applyOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the approved run did not finish:\n%s", applyOut.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "after.txt")); err != nil {
		t.Fatalf("the step after the gate did not run: %v", err)
	}
	if out := runbook("runs", "ls", "-status", "succeeded"); !strings.Contains(out, id) {
		t.Fatalf("runs ls -status succeeded:\n%s", out)
	}
}

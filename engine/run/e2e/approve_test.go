package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
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

// syncBuffer is a strings.Builder safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestApproveHintWorksWherePrinted: apply from the parent of the
// runbook's directory; the approve command the waiting step prints works
// pasted there.
func TestApproveHintWorksWherePrinted(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "rb"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "rb", "main.hcl"), approveRunbook)
	cmd := exec.Command(bin, "apply", "-auto-approve", "rb/main.hcl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	var so, se syncBuffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	re := regexp.MustCompile("approve with `([^`]+)`")
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no approve hint printed:\n%s\n%s", so.String(), se.String())
		}
		m = re.FindStringSubmatch(so.String() + se.String())
	}
	if !strings.Contains(m[1], "-state-dir rb/.runbook") {
		t.Errorf("approve hint %q does not name the state directory", m[1])
	}
	if r := paste(t, root, shellSplit(m[1])); r.code != 0 {
		t.Fatalf("pasted %q: exit %d %s", m[1], r.code, r.stderr)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("apply: %v\n%s\n%s", err, so.String(), se.String())
	}
}

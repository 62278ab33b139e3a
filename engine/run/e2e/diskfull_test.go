package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalFullIsResumable: when the journal cannot be written (here a
// file size limit, as a full disk would), the run stops, exits 4 with the
// command that resumes it, and that command finishes the run once there is
// room again.
func TestJournalFullIsResumable(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatal("prlimit (util-linux) is needed to limit the journal's size")
	}
	dir := t.TempDir()
	var src strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&src, "step \"core.noop\" \"s%d\" {\n}\n", i)
	}
	write(t, filepath.Join(dir, "main.hcl"), src.String())
	cmd := exec.Command("prlimit", "--fsize=30000", bin, "apply", "-auto-approve", "main.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 4 || !strings.Contains(se.String(), "the journal cannot be written") {
		t.Fatalf("apply with a full journal: %v\nstdout:\n%s\nstderr:\n%s", err, so.String(), se.String())
	}
	_, hint, found := strings.Cut(se.String(), "Resume with: runbook ")
	if !found {
		t.Fatalf("no resume hint:\n%s", se.String())
	}
	args := strings.Fields(strings.TrimSpace(hint))
	r := runbook(t, dir, nil, args...)
	if r.code != 0 || !strings.Contains(r.stdout, "Steps: 300 (300 succeeded)") {
		t.Fatalf("%v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
	}
}

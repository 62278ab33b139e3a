package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const interruptRunbook = `
step "core.sleep" "one" {
  with = { duration = "50ms" }
}
step "core.sleep" "two" {
  with       = { duration = "3s" }
  depends_on = [step.one]
}
step "core.noop" "three" {
  depends_on = [step.two]
}
`

// TestInterruptResume: the first Ctrl-C stops the run, leaves it
// resumable and says how to resume; resume then finishes it.
func TestInterruptResume(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), interruptRunbook)
	cmd := exec.Command(bin, "apply", "-auto-approve", "main.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var se strings.Builder
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	sc := bufio.NewScanner(out)
	signalled := false
	for sc.Scan() {
		stdout.WriteString(sc.Text() + "\n")
		if !signalled && strings.Contains(sc.Text(), "two: started") {
			time.Sleep(100 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGINT)
			signalled = true
		}
	}
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 4 || !strings.Contains(stdout.String(), "Resume:   runbook resume") {
		t.Fatalf("exit %d, want 4 with a resume command\n%s\n%s", code, stdout.String(), se.String())
	}
	runs := journalRuns(t, dir)
	if len(runs) != 1 || runs[0].State != "interrupted" {
		t.Fatalf("runs: %+v", runs)
	}
	r := runbook(t, dir, nil, "resume", runs[0].ID)
	if r.code != 0 || !strings.Contains(r.stdout, "one: already done") || !strings.Contains(r.stdout, "three: done") {
		t.Fatalf("resume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

const abortRunbook = `
variable "pw" {
  type      = string
  sensitive = true
}
variable "fail" {
  type    = string
  default = ""
}
step "core.noop" "a" {
  with = { values = { pw = var.pw } }
}
step "core.noop" "b" {
  with       = { fail = var.fail, values = { pw = var.pw } }
  depends_on = [step.a]
  on_failure = "abort"
}
`

// TestResumeSensitiveVariables: without a state key (sealing turned off)
// sensitive variables are not journaled, so resume asks for them again;
// with a key (given, or the user's, created by the first apply) it needs
// nothing.
func TestResumeSensitiveVariables(t *testing.T) {
	t.Run("no-key", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "main.hcl"), abortRunbook)
		noKey := []string{"RUNBOOK_STATE_KEY_FILE=none"}
		r := runbook(t, dir, noKey, "apply", "-auto-approve", "-var", "pw=s3cret-pw", "-var", "fail=boom", "main.hcl")
		// on_failure = "abort" leaves the run resumable: exit 4, as documented.
		if r.code != 4 || !strings.Contains(r.stdout, "aborted") {
			t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runbook(t, dir, noKey, "resume", "-var", "fail=")
		if r.code != 1 || !strings.Contains(r.stderr, "pw") {
			t.Fatalf("resume without pw: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = runbook(t, dir, append(noKey, "RUNBOOK_VAR_pw=s3cret-pw"), "resume", "-var", "fail=")
		if r.code != 0 || strings.Contains(r.stdout+r.stderr, "s3cret-pw") {
			t.Fatalf("resume with pw: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	for name, key := range map[string][]string{"key": {"RUNBOOK_STATE_KEY=k-123-long-passphrase"}, "default-key": nil} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "main.hcl"), abortRunbook)
			if r := runbook(t, dir, key, "apply", "-auto-approve", "-var", "pw=s3cret-pw", "-var", "fail=boom", "main.hcl"); r.code != 4 {
				t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
			}
			if r := runbook(t, dir, key, "resume", "-var", "fail="); r.code != 0 {
				t.Fatalf("resume with key: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestFailedRunErrorOnStderr: the summary goes to stdout, the error that
// failed the run to stderr.
func TestFailedRunErrorOnStderr(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), abortRunbook)
	r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "pw=x", "-var", "fail=boom-reason", "main.hcl")
	if !strings.Contains(r.stderr, "Error: step b: conflict: boom-reason") || strings.Contains(r.stdout, "Error:") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Resume:") {
		t.Fatalf("the summary lost its hints:\n%s", r.stdout)
	}
}

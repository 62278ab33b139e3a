package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileRunbook writes a file and removes it on rollback.
const fileRunbook = `
runbook "x" {
  lock = "x"
}
step "core.file" "f" {
  with     = { path = %q, content = "hello" }
  rollback = native
}
`

// abortingRunbook writes a file, then stops (on_failure = "abort") unless
// var.ok: the run stays unfinished and holds its lock.
const abortingRunbook = fileRunbook + `
variable "ok" {
  type    = bool
  default = false
}
step "core.assert" "gate" {
  with       = { condition = var.ok }
  depends_on = [step.f]
  on_failure = "abort"
}
`

// hint is the command printed after prefix ("Rollback: ", "Resume:   ")
// in out, split into arguments as a shell would (single quotes only).
func hint(t *testing.T, out, prefix string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return shellSplit(strings.TrimSpace(rest))
		}
	}
	t.Fatalf("no %q hint in:\n%s", prefix, out)
	return nil
}

func shellSplit(s string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// paste runs a printed `runbook ...` command in dir.
func paste(t *testing.T, dir string, args []string) result {
	t.Helper()
	if len(args) == 0 || args[0] != "runbook" {
		t.Fatalf("hint %q does not start with runbook", args)
	}
	return runbook(t, dir, nil, args[1:]...)
}

// TestPrintedHintsWorkWherePrinted: apply from the repository root on
// runbooks/x/main.hcl, and from the runbook's own directory; the rollback
// hint each prints works pasted as is where it was printed.
func TestPrintedHintsWorkWherePrinted(t *testing.T) {
	for _, from := range []string{".", "runbooks/x"} {
		t.Run(strings.ReplaceAll(from, "/", "_"), func(t *testing.T) {
			root := t.TempDir()
			rbDir := filepath.Join(root, "runbooks", "x")
			if err := os.MkdirAll(rbDir, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(root, "out.txt")
			write(t, filepath.Join(rbDir, "main.hcl"), strings.Replace(fileRunbook, "%q", `"`+target+`"`, 1))
			cwd := filepath.Join(root, from)
			rel, _ := filepath.Rel(cwd, filepath.Join(rbDir, "main.hcl"))
			r := runbook(t, cwd, nil, "apply", "-auto-approve", rel)
			if r.code != 0 {
				t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(rbDir, ".runbook")); err != nil {
				t.Fatalf("the run is not journaled beside the runbook: %v", err)
			}
			rb := paste(t, cwd, append(hint(t, r.stdout, "Rollback: "), "-auto-approve"))
			if rb.code != 0 || !strings.Contains(rb.stdout, "rolled back") {
				t.Fatalf("pasted rollback: exit %d\n%s\n%s", rb.code, rb.stdout, rb.stderr)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Fatalf("the rollback did not undo the step: %v", err)
			}

			// An aborted run holds the lock: the next apply's lock error
			// says how to resume or roll it back, and both hints work.
			write(t, filepath.Join(rbDir, "main.hcl"), strings.Replace(abortingRunbook, "%q", `"`+target+`"`, 1))
			if r := runbook(t, cwd, nil, "apply", "-auto-approve", rel); r.code != 4 {
				t.Fatalf("apply: exit %d, want 4 (aborted)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			r = runbook(t, cwd, nil, "apply", "-auto-approve", rel)
			m := regexp.MustCompile(`resume it \((runbook resume[^)]*)\) or roll it back \((runbook rollback[^)]*)\)`).FindStringSubmatch(r.stderr)
			if r.code == 0 || m == nil {
				t.Fatalf("apply over the aborted run: exit %d\n%s", r.code, r.stderr)
			}
			if rs := paste(t, cwd, append(shellSplit(m[1]), "-var", "ok=true")); rs.code != 0 {
				t.Fatalf("pasted %q: exit %d\n%s\n%s", m[1], rs.code, rs.stdout, rs.stderr)
			}
			if rb := paste(t, cwd, append(shellSplit(m[2]), "-auto-approve")); rb.code != 0 {
				t.Fatalf("pasted %q: exit %d\n%s\n%s", m[2], rb.code, rb.stdout, rb.stderr)
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Fatalf("the rollback did not undo the step: %v", err)
			}
		})
	}
}

// TestStateDirIsFoundWalkingUp: with a .runbook at the repository root,
// apply from a subdirectory journals there, and runs/rollback from the root
// or from RUNBOOK_STATE_DIR find the run.
func TestStateDirIsFoundWalkingUp(t *testing.T) {
	root := t.TempDir()
	rbDir := filepath.Join(root, "runbooks", "x")
	for _, d := range []string{rbDir, filepath.Join(root, ".runbook")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(root, "out.txt")
	write(t, filepath.Join(rbDir, "main.hcl"), strings.Replace(fileRunbook, "%q", `"`+target+`"`, 1))
	r := runbook(t, rbDir, nil, "apply", "-auto-approve", "main.hcl")
	if r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(rbDir, ".runbook")); !os.IsNotExist(err) {
		t.Fatalf("journaled beside the runbook, not in the root's .runbook")
	}
	if rows := runsLs(t, root); len(rows) != 1 {
		t.Fatalf("runs ls from the root: %+v", rows)
	}
	elsewhere := t.TempDir()
	rr := runbook(t, elsewhere, []string{"RUNBOOK_STATE_DIR=" + filepath.Join(root, ".runbook")}, "runs", "ls")
	if rr.code != 0 || !strings.Contains(rr.stdout, "succeeded") {
		t.Fatalf("runs ls with RUNBOOK_STATE_DIR: exit %d\n%s\n%s", rr.code, rr.stdout, rr.stderr)
	}
	rb := paste(t, rbDir, append(hint(t, r.stdout, "Rollback: "), "-auto-approve"))
	if rb.code != 0 {
		t.Fatalf("pasted rollback: exit %d\n%s\n%s", rb.code, rb.stdout, rb.stderr)
	}
}

const sleepRunbook = `
runbook "slow" {
  lock = "slow"
}
step "core.sleep" "wait" {
  with = { duration = "30s" }
}
`

// TestKilledApplyIsListedInterrupted: an apply killed with kill -9 is
// listed as interrupted with the command that resumes it, which works; its
// stale lock is taken over by the resume.
func TestKilledApplyIsListedInterrupted(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), sleepRunbook)
	started := func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, ".runbook", "runs", "*", "journal.ndjson"))
		if len(m) == 0 {
			return false
		}
		b, _ := os.ReadFile(m[0])
		return strings.Contains(string(b), "attempt_started")
	}
	if code := startKillWhen(t, dir, started, 100*time.Millisecond, "apply", "-auto-approve", "main.hcl"); code != -1 {
		t.Fatalf("apply was not killed (exit %d)", code)
	}
	rows := runsLs(t, dir)
	if len(rows) != 1 || rows[0].State != "interrupted" || rows[0].ResumeCommand != "runbook resume "+rows[0].ID {
		t.Fatalf("runs ls = %+v, want one interrupted run with its resume command", rows)
	}
	text := runbook(t, dir, nil, "runs", "ls")
	if !strings.Contains(text.stdout, "interrupted") || !strings.Contains(text.stdout, "runbook resume "+rows[0].ID) {
		t.Fatalf("runs ls:\n%s", text.stdout)
	}
	// A new run is refused: the lock is stale, and held by the unfinished run.
	write(t, filepath.Join(dir, "main.hcl"), strings.Replace(sleepRunbook, "30s", "10ms", 1))
	r := runbook(t, dir, nil, "apply", "-auto-approve", "main.hcl")
	if r.code == 0 || !strings.Contains(r.stderr, "stale: pid") || !strings.Contains(r.stderr, "runbook unlock slow") {
		t.Fatalf("apply over a stale lock: exit %d\n%s", r.code, r.stderr)
	}
	res := runbook(t, dir, nil, "resume", rows[0].ID)
	if res.code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if rows := runsLs(t, dir); rows[0].State != "succeeded" || rows[0].ResumeCommand != "" {
		t.Fatalf("after resume: %+v", rows)
	}
}

// TestActiveLockIsNotBroken: while an apply runs, another apply, the
// run's resume and unlock are all refused.
func TestActiveLockIsNotBroken(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), sleepRunbook)
	cmd := exec.Command(bin, "apply", "-auto-approve", "main.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	var rows []runRow
	for deadline := time.Now().Add(20 * time.Second); len(rows) == 0 || rows[0].State != "running"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the run did not start: %+v", rows)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, ".runbook", "runs", "*")); len(m) > 0 {
			rows = runsLs(t, dir)
		}
	}
	for _, args := range [][]string{
		{"apply", "-auto-approve", "main.hcl"},
		{"resume", rows[0].ID},
		{"rollback", "-auto-approve", rows[0].ID},
		{"unlock", "-auto-approve", "slow"},
	} {
		r := runbook(t, dir, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "which is running") && !strings.Contains(r.stderr, "another process") {
			t.Errorf("%v while the run lives: exit %d\n%s", args, r.code, r.stderr)
		}
	}
}

// failingUndoRunbook: b depends on a; b's undo fails until the file
// named by var.ok exists.
const failingUndoRunbook = `
runbook "undo" {
  lock = "undo"
}
variable "ok" {
  type = string
}
step "core.exec" "a" {
  with = { command = "true" }
  rollback {
    action = core.exec
    with   = { command = "sh", args = ["-c", "echo undone-a > ${var.ok}.a"] }
  }
}
step "core.exec" "b" {
  with       = { command = "true" }
  depends_on = [step.a]
  rollback {
    action = core.exec
    with   = { command = "sh", args = ["-c", "echo cannot undo b >&2; exit 3"] }
  }
}
`

// TestRollbackFailedSaysHowToGoOn: after rollback_failed the summary names
// the failed undo, why, and the three ways on; the printed -skip command
// records the skip and undoes what the step depends on; unlock frees the
// lock of a run left unfinished.
func TestRollbackFailedSaysHowToGoOn(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	write(t, filepath.Join(dir, "main.hcl"), failingUndoRunbook)
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "ok="+ok, "main.hcl"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s", r.code, r.stderr)
	}
	id := runsLs(t, dir)[0].ID
	r := runbook(t, dir, nil, "rollback", "-auto-approve", id, "-var", "ok="+ok)
	if r.code != 3 {
		t.Fatalf("rollback: exit %d, want 3\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"undo of b failed: ", "exit", // which step and why
		"runbook rollback " + id + "\n",
		"runbook rollback " + id + " -skip b\n",
		"runbook unlock undo\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the summary does not say %q:\n%s", want, r.stdout)
		}
	}
	// Unlock on no terminal needs -auto-approve; it frees the key for a new run.
	if u := runbook(t, dir, nil, "unlock", "undo"); u.code == 0 || !strings.Contains(u.stderr, "-auto-approve") {
		t.Fatalf("unlock without a terminal: exit %d\n%s", u.code, u.stderr)
	}
	skip := regexp.MustCompile(`runbook rollback \S+ -skip b`).FindString(r.stdout)
	args := append(shellSplit(skip), "-auto-approve", "-var", "ok="+ok)
	s := paste(t, dir, args)
	if s.code != 0 || !strings.Contains(s.stdout, "rolled back") {
		t.Fatalf("rollback -skip: exit %d\n%s\n%s", s.code, s.stdout, s.stderr)
	}
	if _, err := os.Stat(ok + ".a"); err != nil {
		t.Fatalf("the step b depends on was not undone: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, ".runbook", "runs", id, "journal.ndjson"))
	if !strings.Contains(string(b), `"type":"undo_waived"`) {
		t.Fatalf("the skip is not in the journal:\n%s", b)
	}
	var show struct {
		FormatVersion int `json:"format_version"`
		Run           struct {
			State string `json:"state"`
		} `json:"run"`
		Steps []struct {
			Address, State, Message string
		} `json:"steps"`
	}
	sh := runbook(t, dir, nil, "runs", "show", "-json", id)
	if err := json.Unmarshal([]byte(sh.stdout), &show); err != nil || show.FormatVersion != 1 || show.Run.State != "rolled_back" {
		t.Fatalf("runs show -json: %v\n%s", err, sh.stdout)
	}
	for _, st := range show.Steps {
		if st.Address == "b" && (st.State != "undo_waived" || !strings.Contains(st.Message, "rollback -skip")) {
			t.Errorf("step b in runs show = %+v", st)
		}
	}
}

// TestUnlockReleasesAnUnfinishedRunsLock: a run left rollback_failed holds
// its key; unlock -auto-approve frees it and a new run starts.
func TestUnlockReleasesAnUnfinishedRunsLock(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	write(t, filepath.Join(dir, "main.hcl"), failingUndoRunbook)
	runbook(t, dir, nil, "apply", "-auto-approve", "-var", "ok="+ok, "main.hcl")
	if r := runbook(t, dir, nil, "rollback", "-auto-approve", "-var", "ok="+ok); r.code != 3 {
		t.Fatalf("rollback: exit %d\n%s", r.code, r.stderr)
	}
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "ok="+ok, "main.hcl"); r.code == 0 || !strings.Contains(r.stderr, "runbook unlock undo") {
		t.Fatalf("apply over the unfinished run: exit %d\n%s", r.code, r.stderr)
	}
	if u := runbook(t, dir, nil, "unlock", "-auto-approve", "undo"); u.code != 0 || !strings.Contains(u.stdout, "Released lock") {
		t.Fatalf("unlock: exit %d\n%s\n%s", u.code, u.stdout, u.stderr)
	}
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "ok="+ok, "main.hcl"); r.code != 0 {
		t.Fatalf("apply after unlock: exit %d\n%s", r.code, r.stderr)
	}
}

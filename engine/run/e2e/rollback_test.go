package e2e

import (
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
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
	r := runbook(t, dir, nil, "rollback", "-auto-approve", "-var", "ledger="+ledger)
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
	r := runbook(t, dir, nil, "rollback", "-auto-approve", "-var", "dir="+dir)
	out := r.stdout + r.stderr
	if r.code != 3 || !strings.Contains(out, "conflict") || !strings.Contains(out, conf) || !strings.Contains(out, "content was changed") {
		t.Fatalf("rollback of a drifted file: exit %d, want 3 with a conflict naming %s\n%s", r.code, conf, out)
	}
	if !strings.Contains(r.stderr, "Hint: ") || !strings.Contains(r.stderr, "-force") {
		t.Fatalf("the conflict's hint (how to go through) is not shown:\n%s", r.stderr)
	}
	if b, _ := os.ReadFile(conf); string(b) != "edited by hand later\n" {
		t.Fatalf("the refused rollback changed the file: %q", b)
	}
	r = runbook(t, dir, nil, "rollback", "-auto-approve", "-force", "-var", "dir="+dir)
	if r.code != 0 {
		t.Fatalf("rollback -force: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("rollback -force left the file: %v", err)
	}
}

const secretFileRunbook = `
runbook "rotate" {
  lock = "rotate"
}
variable "password" {
  type      = string
  sensitive = true
}
step "core.file" "password" {
  with     = { path = "password", content = var.password }
  rollback = native
}
`

// TestSensitiveFileOldContentSealed: rotating a password file keeps the
// old password only sealed in the journal (core.file's undo state holds
// it, and no mask knows it), and a later rollback with the key restores it.
func TestSensitiveFileOldContentSealed(t *testing.T) {
	const old = "old-password-canary-7f3a"
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), secretFileRunbook)
	write(t, filepath.Join(dir, "password"), old)
	key := []string{"RUNBOOK_STATE_KEY=test-key-1"}
	if r := runbook(t, dir, key, "apply", "-auto-approve", "-var", "password=new-password", "main.hcl"); r.code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(old))
	filepath.WalkDir(filepath.Join(dir, ".runbook"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range append([]string{string(b)}, decodedStrings(b)...) {
			if strings.Contains(s, old) || strings.Contains(s, b64) {
				t.Errorf("the old password is in clear in %s", p)
			}
		}
		return nil
	})
	if r := runbook(t, dir, key, "rollback", "-auto-approve"); r.code != 0 {
		t.Fatalf("rollback: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "password")); string(b) != old {
		t.Fatalf("rollback restored %q, want the old password", b)
	}
}

// decodedStrings returns the base64 strings found in the JSON lines of b,
// decoded (a journal blob is base64).
func decodedStrings(b []byte) []string {
	var out []string
	for _, m := range regexp.MustCompile(`"([A-Za-z0-9+/]{16,}={0,2})"`).FindAllSubmatch(b, -1) {
		if d, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil {
			out = append(out, string(d))
		}
	}
	return out
}

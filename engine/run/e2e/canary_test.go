package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Canaries of TestCanaryLaterRollback: a sensitive number, the password of
// a URL, a file's secret content.
const (
	canaryNumber = "73914862051"
	canaryURLPW  = "UrlPw-4c1d9b"
	canaryFile   = "FileSecret-e2b7"
)

const laterRollbackRunbook = `
variable "dir" { type = string }
variable "pin" {
  type      = number
  sensitive = true
}
variable "url" {
  type      = string
  sensitive = true
}
variable "content" {
  type      = string
  sensitive = true
}
step "core.noop" "pin" {
  with = { values = var.pin }
}
step "core.file" "conf" {
  with     = { path = "${var.dir}/conf", content = "${var.content}\n${var.url}\n" }
  rollback = native
}
step "core.http" "probe" {
  with       = { url = "${var.url}health", timeout = "2s" }
  on_failure = "continue"
  depends_on = [step.conf]
}
`

// TestCanaryLaterRollback: secrets planted in a sensitive number returned
// by a step, a URL's password and a file's content appear in no byte of
// the state directory, of apply, rollback, or runs show (text and JSON),
// with the state key the first apply creates, or none; and the later
// rollback works in both cases (the secrets given again without a key).
func TestCanaryLaterRollback(t *testing.T) {
	vars := []string{"-var", "pin=" + canaryNumber, "-var", "url=https://user:" + canaryURLPW + "@127.0.0.1:1/", "-var", "content=" + canaryFile}
	for _, tc := range []struct {
		name         string
		env          []string
		rollbackArgs []string
	}{
		{"default-key", nil, nil},
		{"no-key", []string{"RUNBOOK_STATE_KEY_FILE=none"}, vars},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "main.hcl"), laterRollbackRunbook)
			var out strings.Builder
			r := runbook(t, dir, tc.env, append(append([]string{"apply", "-auto-approve", "-json", "-var", "dir=" + dir}, vars...), "main.hcl")...)
			out.WriteString(r.stdout + r.stderr)
			if r.code != 1 {
				t.Fatalf("apply: exit %d, want 1 (a step failed, continued)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "conf")); !strings.Contains(string(b), canaryFile) {
				t.Fatalf("conf = %q", b)
			}
			id := runsLs(t, dir)[0].ID
			if tc.env == nil {
				showWithoutKey(t, dir, id)
			}
			for _, cmd := range [][]string{{"runs", "show", id}, {"runs", "show", "-json", id}} {
				r := runbook(t, dir, tc.env, cmd...)
				out.WriteString(r.stdout + r.stderr)
			}
			r = runbook(t, dir, tc.env, append([]string{"rollback", "-json", "-auto-approve"}, append(tc.rollbackArgs, id)...)...)
			out.WriteString(r.stdout + r.stderr)
			if r.code != 0 {
				t.Fatalf("rollback: exit %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "conf")); !os.IsNotExist(err) {
				t.Fatalf("conf still there after the rollback: %v", err)
			}
			for _, cmd := range [][]string{{"runs", "show", id}, {"runs", "show", "-json", id}} {
				r := runbook(t, dir, tc.env, cmd...)
				out.WriteString(r.stdout + r.stderr)
			}
			check := func(what, s string) {
				t.Helper()
				for _, c := range []string{canaryNumber, canaryURLPW, canaryFile} {
					if strings.Contains(s, c) {
						t.Errorf("canary %s in clear in %s", c, what)
					}
				}
			}
			check("the commands' output", out.String())
			filepath.WalkDir(filepath.Join(dir, ".runbook"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, _ := os.ReadFile(p)
				check(p, string(b))
				return nil
			})
		})
	}
}

// showWithoutKey: runs show without the key that sealed the run names that
// key and how to supply it.
func showWithoutKey(t *testing.T, dir, id string) {
	t.Helper()
	r := runbook(t, dir, nil, "runs", "show", "-json", id)
	var show struct {
		Meta struct{ Key string } `json:"run"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &show); err != nil || len(show.Meta.Key) != 12 {
		t.Fatalf("runs show -json: key %q, %v\n%s", show.Meta.Key, err, r.stdout)
	}
	r = runbook(t, dir, []string{"RUNBOOK_STATE_KEY_FILE=none"}, "runs", "show", id)
	if !strings.Contains(r.stderr, show.Meta.Key) || !strings.Contains(r.stderr, "RUNBOOK_STATE_KEY_FILE=PATH") {
		t.Errorf("runs show without the key does not say which key sealed the run:\n%s", r.stderr)
	}
}

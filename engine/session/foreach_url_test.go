package session

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
)

const urlKeyRunbook = `
variable "dir" { type = string }
variable "slaves" { type = list(string) }
step "core.file" "copy" {
  for_each = toset(var.slaves)
  with     = { path = "${var.dir}/${md5(each.key)}", content = "for ${each.key}\n" }
  rollback = native
}
step "core.exec" "say" {
  for_each   = toset(var.slaves)
  depends_on = [step.copy]
  with       = { command = "sh", args = ["-c", "echo syncing $0; echo to $0 >&2", each.key] }
}
output "targets" { value = [for k, v in step.copy : k] }
`

// TestURLPasswordInForEachKey: a for_each key that is a URL with a
// password is journaled, shown and emitted with the password redacted
// (step.copy["ssh://sync:***@host/..."]), apply and a later rollback
// both; the password is nowhere in the state directory, the events or
// the run's description.
func TestURLPasswordInForEachKey(t *testing.T) {
	const canary = "canary-url-pw-4711"
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, urlKeyRunbook)
	rec := &event.Recorder{}
	s := newSessionEnv(t, dir, rec, map[string]string{"XDG_CONFIG_HOME": t.TempDir()})
	slaves := `slaves=["ssh://sync:` + canary + `@slave1.example/srv/store", "ssh://sync:` + canary + `x@slave2.example/srv/store", "/srv/local"]`
	out, err := applier(t, s, dir, main)(slaves)
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunSucceeded {
		t.Fatalf("state = %s (%v)", out.Result.State, out.Result.Err)
	}
	back, err := s.Rollback(context.Background(), "", vars("dir="+dir, slaves), RollbackOptions{})
	if err != nil {
		fatal(t, err)
	}
	if back.Result.State != journal.RunRolledBack {
		t.Fatalf("rollback state = %s (%v)", back.Result.State, back.Result.Err)
	}
	info, err := s.Run(out.RunID)
	if err != nil {
		t.Fatal(err)
	}
	shown, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	var events bytes.Buffer
	for _, e := range rec.Events() {
		// As every view writes them: masked with the session's masker.
		b, _ := json.Marshal(e.Masked(s.Mask().Mask))
		events.Write(b)
	}
	for what, b := range map[string][]byte{
		"state dir": readTree(t, filepath.Join(dir, ".runbook")),
		"events":    events.Bytes(),
		"run info":  shown,
	} {
		if bytes.Contains(b, []byte(canary)) {
			i := bytes.Index(b, []byte(canary))
			t.Errorf("%s holds the password: …%s…", what, b[max(0, i-80):min(len(b), i+40)])
		}
	}
	want := `copy[\"ssh://sync:***@slave1.example/srv/store\"]`
	if !strings.Contains(events.String(), want) {
		t.Errorf("events do not name %s", want)
	}
	if !bytes.Contains(shown, []byte(`***@slave2.example`)) {
		t.Errorf("run info does not name the redacted address: %s", shown)
	}
}

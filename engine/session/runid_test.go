package session

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// Apply gives its run the id fixed by Options.RunID; the same id cannot
// start a second run, and a malformed id starts none.
func TestApplyWithAFixedRunID(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), `step "core.noop" "a" {}`)
	apply := func(id string) (*Outcome, error) {
		t.Helper()
		s, err := New(Options{StateDir: filepath.Join(dir, ".runbook"), Builtins: builtin.All(), RunID: id,
			Getenv: selfExeEnv})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rb, err := s.Open(vars(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer rb.Close()
		return rb.Apply(context.Background(), nil)
	}
	id := journal.NewID()
	out, err := apply(id)
	if err != nil {
		t.Fatal(err)
	}
	if out.RunID != id || out.Result.State != journal.RunSucceeded {
		t.Fatalf("run %s ended %s, want run %s succeeded", out.RunID, out.Result.State, id)
	}
	st, err := journal.NewLocal(filepath.Join(dir, ".runbook")).Load(id)
	if err != nil || st.State != journal.RunSucceeded {
		t.Fatalf("journal of %s: %v, %v", id, st, err)
	}
	if _, err := apply(id); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second run with id %s: %v, want it refused", id, err)
	}
	if _, err := apply("not-an-id"); err == nil {
		t.Error("a malformed run id was accepted")
	}
}

// selfExeEnv is an environment naming only the test's runbook binary.
func selfExeEnv(k string) string {
	if k == "RUNBOOK_SELF_EXE" {
		return selfExe
	}
	return ""
}

package session

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/journal"
)

func TestSkipUndo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".runbook")
	store := journal.NewLocal(dir)
	m := &journal.Meta{}
	j, err := store.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*journal.Record{
		{Type: journal.RecStepSucceeded, Step: "a"},
		{Type: journal.RecStepSucceeded, Step: `db["x"]`},
		{Type: journal.RecStepSucceeded, Step: `db["y"]`},
		{Type: journal.RecUndoFailed, Step: `db["x"]`, Error: &journal.ErrorInfo{Message: "401"}},
		{Type: journal.RecUndoSucceeded, Step: "a"},
	} {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	s, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ step, wantErr string }{
		{"nope", `has no step "nope"`},
		{"a", "is undone: there is no undo to skip"},
	} {
		if _, err := s.SkipUndo(m.ID[:8], c.step); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("skip %s: %v, want %q", c.step, err, c.wantErr)
		}
	}
	id, err := s.SkipUndo(m.ID[:8], "db")
	if err != nil || id != m.ID {
		t.Fatalf("skip db = %s, %v", id, err)
	}
	st, err := store.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{`db["x"]`, `db["y"]`} {
		if got := st.Steps[a]; got.State != journal.StepUndoWaived || !strings.Contains(got.Message, "rollback -skip") {
			t.Errorf("%s = %s %q, want undo_waived", a, got.State, got.Message)
		}
	}
}

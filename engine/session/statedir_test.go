package session

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindStateDir(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// No .runbook anywhere below root: beside the directory.
	if got, want := FindStateDir(deep), filepath.Join(deep, DefaultStateDir); got != want && !isOutsideAncestor(got, root) {
		t.Errorf("no .runbook: %s, want %s", got, want)
	}
	if err := os.Mkdir(filepath.Join(root, DefaultStateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, want := FindStateDir(deep), filepath.Join(root, DefaultStateDir); got != want {
		t.Errorf("nearest walking up: %s, want %s", got, want)
	}
	t.Chdir(deep)
	if got, want := FindStateDir("."), filepath.Join("..", "..", DefaultStateDir); got != want {
		t.Errorf("relative: %s, want %s", got, want)
	}
	s, err := New(Options{Getenv: func(k string) string {
		if k == StateDirEnv {
			return "/env/state"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.StateDir(); got != "/env/state" {
		t.Errorf("RUNBOOK_STATE_DIR: %s", got)
	}
	if got := s.commands("/env/state", "R").Rollback; got != "runbook rollback R" {
		t.Errorf("hint with the env's state dir: %q", got)
	}
	if got := s.commands(filepath.Join(deep, "x y"), "R").Rollback; got != "runbook rollback -state-dir 'x y' R" {
		t.Errorf("hint with another state dir: %q", got)
	}
}

// isOutsideAncestor: a .runbook above root (the machine's own) was found.
func isOutsideAncestor(got, root string) bool {
	rel, err := filepath.Rel(root, got)
	return err == nil && len(rel) > 2 && rel[:2] == ".."
}

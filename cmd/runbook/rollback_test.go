package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
)

// TestRollbackAsks: without a terminal, rollback refuses unless
// -auto-approve, undoing nothing; with it, it names the run it picked and
// rolls back.
func TestRollbackAsks(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	conf := filepath.Join(dir, "conf")
	src := "step \"core.file\" \"conf\" {\n  with     = { path = \"" + conf + "\", content = \"v1\" }\n  rollback = native\n}\n"
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	rf := runFlags{parallelism: 1, stateDir: filepath.Join(dir, ".runbook")}
	var stdout, stderr bytes.Buffer
	if err := runApply(&stdout, &stderr, main, lang.VarSources{}, rf, true); langExitCode(err) != 0 {
		t.Fatalf("apply: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	err := runRollback(&stdout, &stderr, "", lang.VarSources{}, rf, nil, session.RollbackOptions{}, false)
	if langExitCode(err) != exitError || !strings.Contains(stderr.String(), "pass -auto-approve to roll back") {
		t.Fatalf("rollback without a terminal: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("a refused rollback undid the step: %v", err)
	}

	stdout.Reset()
	stderr.Reset()
	if err := runRollback(&stdout, &stderr, "", lang.VarSources{}, rf, nil, session.RollbackOptions{}, true); langExitCode(err) != 0 {
		t.Fatalf("rollback -auto-approve: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "Rolling back run ") || !strings.Contains(stderr.String(), "the latest run of the runbook in "+dir) {
		t.Errorf("rollback did not say which run it picked:\n%s", stderr.String())
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("conf still there: %v", err)
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
)

// journalRun journals a run of runbook "r" that started at t and ended in
// state.
func journalRun(t *testing.T, dir string, at time.Time, state string) string {
	t.Helper()
	store := journal.NewLocal(dir)
	m := &journal.Meta{ID: journal.NewID(), Runbook: "r", Started: at}
	j, err := store.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Append(&journal.Record{Time: at, Type: journal.RecRunState, State: state}); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func TestRunsPrune(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-1000 * time.Hour)
	done := journalRun(t, dir, old, journal.RunSucceeded)
	aborted := journalRun(t, dir, old, journal.RunAborted)
	recent := journalRun(t, dir, time.Now(), journal.RunSucceeded)
	opts := session.PruneOptions{OlderThan: 720 * time.Hour}
	ls := func() string {
		ids, err := journal.NewLocal(dir).List()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, " ")
	}
	all := ls()

	stdin, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stdout, stderr bytes.Buffer
	// Not a terminal, no -auto-approve: refused, nothing removed.
	if err := runsPrune(&stdout, &stderr, stdin, dir, opts, false); err == nil || !strings.Contains(err.Error(), "-auto-approve") {
		t.Errorf("prune without a terminal = %v", err)
	}
	// -dry-run lists the old finished run only.
	stdout.Reset()
	dry := opts
	dry.DryRun = true
	if err := runsPrune(&stdout, &stderr, stdin, dir, dry, false); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); !strings.Contains(out, done) || strings.Contains(out, aborted) || strings.Contains(out, recent) || !strings.Contains(out, "Would remove 1 runs") {
		t.Errorf("dry run said:\n%s", out)
	}
	if got := ls(); got != all {
		t.Errorf("runs after refused and dry prunes = %s, want %s", got, all)
	}
	stdout.Reset()
	if err := runsPrune(&stdout, &stderr, stdin, dir, opts, true); err != nil {
		t.Fatal(err)
	}
	if got, want := ls(), recent+" "+aborted; got != want {
		t.Errorf("runs after prune = %s, want %s\n%s", got, want, stdout.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "runs", done)); !os.IsNotExist(err) {
		t.Errorf("pruned run directory: %v", err)
	}
}

func TestRunsLsStatusChecked(t *testing.T) {
	for _, st := range []string{"", journal.RunSucceeded, journal.RunInterrupted, journal.RunCorrupt} {
		if err := checkStatus(st); err != nil {
			t.Errorf("checkStatus(%q) = %v", st, err)
		}
	}
	err := checkStatus("sucess")
	if err == nil || !strings.Contains(err.Error(), "succeeded") {
		t.Errorf("checkStatus(typo) = %v, want the states listed", err)
	}
}

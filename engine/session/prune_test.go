package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/journal"
)

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	mainA := filepath.Join(dir, "main.hcl")
	write(t, mainA, strings.ReplaceAll(fileRunbook, "POLICY", "rollback"))
	if err := os.Mkdir(filepath.Join(dir, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	mainB := filepath.Join(dir, "b", "main.hcl")
	write(t, mainB, strings.ReplaceAll(fileRunbook, "POLICY", "abort"))
	s := newSession(t, dir, nil)
	applyA, applyB := applier(t, s, dir, mainA), applier(t, s, filepath.Join(dir, "b"), mainB)

	var ids []string
	for i, want := range []struct{ fail, state string }{
		{"", journal.RunSucceeded}, {"boom", journal.RunRolledBack}, {"", journal.RunSucceeded},
	} {
		out, err := applyA("fail=" + want.fail)
		if err != nil {
			fatal(t, err)
		}
		if out.Result.State != want.state {
			t.Fatalf("run %d: state %s, want %s", i, out.Result.State, want.state)
		}
		ids = append(ids, out.RunID)
	}
	aborted, err := applyB("fail=boom")
	if err != nil || aborted.Result.State != journal.RunAborted {
		t.Fatalf("apply b = %+v, %v", aborted, err)
	}
	runIDs := func(sts []*journal.State) []string {
		var out []string
		for _, st := range sts {
			out = append(out, st.Meta.ID)
		}
		return out
	}
	left := func() []string {
		runs, err := s.Runs()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range runs {
			out = append(out, r.State.Meta.ID)
		}
		return out
	}
	all := []string{aborted.RunID, ids[2], ids[1], ids[0]}
	never := func([]*journal.State) (bool, error) { t.Fatal("confirm called"); return false, nil }

	// An answer to a gate of a run that will be pruned.
	approval := filepath.Join(dir, ".runbook", "approvals", ids[0], "gate.json")
	if err := os.MkdirAll(filepath.Dir(approval), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, approval, "{}")

	// A dry run lists every finished run and removes nothing.
	got, err := s.Prune(PruneOptions{DryRun: true}, never)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ids[2], ids[1], ids[0]}, runIDs(got)); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(all, left()); diff != "" {
		t.Errorf("runs after a dry run (-want +got):\n%s", diff)
	}
	// Nothing is old enough.
	if got, err := s.Prune(PruneOptions{OlderThan: time.Hour}, never); err != nil || len(got) != 0 {
		t.Errorf("prune -older-than 1h = %v, %v", runIDs(got), err)
	}
	// Refused: nothing removed.
	if _, err := s.Prune(PruneOptions{}, func([]*journal.State) (bool, error) { return false, nil }); err != ErrCancelled {
		t.Errorf("refused prune = %v", err)
	}
	// Keep the newest run of each runbook: the two older finished ones go.
	got, err = s.Prune(PruneOptions{Keep: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ids[1], ids[0]}, runIDs(got)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{aborted.RunID, ids[2]}, left()); diff != "" {
		t.Errorf("runs left (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Dir(approval)); !os.IsNotExist(err) {
		t.Errorf("pruned run's approvals: %v", err)
	}
	// An hour later, everything finished is old, but a live process holds
	// the last finished run: it stays.
	later := PruneOptions{OlderThan: 30 * time.Minute, Now: time.Now().Add(time.Hour)}
	l, err := journal.NewLocal(filepath.Join(dir, ".runbook")).Lock("run:"+ids[2], ids[2], Holder())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Prune(later, nil); err != nil || len(got) != 0 {
		t.Errorf("prune of a held run = %v, %v", runIDs(got), err)
	}
	l.Release(true)
	// Released, it goes; the aborted run (it holds the lock key and can be
	// resumed) stays.
	got, err = s.Prune(later, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{ids[2]}, runIDs(got)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{aborted.RunID}, left()); diff != "" {
		t.Errorf("runs left (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, ".runbook", "runs", ids[2])); !os.IsNotExist(err) {
		t.Errorf("pruned run's directory: %v", err)
	}
	// The unfinished run can still be resumed.
	if _, err := s.Resume(t.Context(), aborted.RunID, vars("dir="+filepath.Join(dir, "b"), "fail=")); err != nil {
		t.Errorf("resume after prune: %v", err)
	}
}

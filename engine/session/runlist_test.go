package session

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/journal"
)

// listFixture journals six runs in store; names[i] is the id of run i+1
// (oldest first).
func listFixture(t *testing.T, store journal.Store) (names map[string]string) {
	t.Helper()
	runs := []struct {
		name, runbook, lock string
		recs                []journal.Record
	}{
		{"1", "a", "k1", []journal.Record{{Type: journal.RecRunState, State: journal.RunSucceeded}}},
		{"2", "a", "k2", []journal.Record{{Type: journal.RecRunState, State: journal.RunFailed}}},
		{"3", "b", "k1", nil}, // running, its process gone: interrupted
		{"4", "b", "", []journal.Record{{Type: journal.RecRunState, State: journal.RunRolledBack}}},
		{"5", "a", "k1", []journal.Record{{Type: journal.RecRunState, State: journal.RunInterrupted},
			{Type: journal.RecRunResumed, Meta: &journal.Meta{User: "x"}}}},
		{"6", "a", "k3", []journal.Record{{Type: journal.RecRunState, State: journal.RunSucceeded}}},
	}
	names = map[string]string{}
	for _, r := range runs {
		m := &journal.Meta{ID: journal.NewID(), Runbook: r.runbook, Lock: r.lock, Files: []journal.FileHash{{Path: "/nowhere/main.hcl"}}}
		j, err := store.Create(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.recs {
			if err := j.Append(&r.recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		j.Close()
		names[m.ID] = r.name
	}
	return names
}

// FindRuns selects runs by runbook, lock key and state, newest first, up
// to a limit, the same from a directory and from a database (where the
// selection is a query).
func TestFindRuns(t *testing.T) {
	tests := []struct {
		q    RunQuery
		want []string
		more bool
	}{
		{RunQuery{}, []string{"6", "5", "4", "3", "2", "1"}, false},
		{RunQuery{Limit: 2}, []string{"6", "5"}, true},
		{RunQuery{Limit: 6}, []string{"6", "5", "4", "3", "2", "1"}, false},
		{RunQuery{Runbook: "a"}, []string{"6", "5", "2", "1"}, false},
		{RunQuery{Lock: "k1"}, []string{"5", "3", "1"}, false},
		{RunQuery{Status: journal.RunInterrupted}, []string{"5", "3"}, false},
		{RunQuery{Status: journal.RunSucceeded, Limit: 1}, []string{"6"}, true},
		{RunQuery{Status: journal.RunSucceeded, Limit: 2}, []string{"6", "1"}, false},
		{RunQuery{Runbook: "a", Status: journal.RunFailed}, []string{"2"}, false},
		{RunQuery{Runbook: "b", Lock: "k1", Status: journal.RunInterrupted}, []string{"3"}, false},
		{RunQuery{Status: journal.RunRunning}, nil, false},
	}
	for _, kind := range []string{"local", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			s, store, where := sessionOn(t, kind)
			if _, ok := store.(journal.RunLister); ok != (kind == "postgres") {
				t.Fatalf("%s store lists runs with a query: %v", kind, ok)
			}
			names := listFixture(t, store)
			for _, tt := range tests {
				runs, more, err := s.FindRuns(tt.q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, ri := range runs {
					got = append(got, names[ri.State.Meta.ID])
				}
				if d := cmp.Diff(tt.want, got); d != "" || more != tt.more {
					t.Errorf("%+v: more %v (want %v), runs (-want +got):\n%s", tt.q, more, tt.more, d)
				}
			}
			id, err := latestRun(store, where, true)
			if err != nil || names[id] != "5" {
				t.Errorf("latest unfinished run: %s (%v), want 5", names[id], err)
			}
			id, err = latestRun(store, where, false)
			if err != nil || names[id] != "6" {
				t.Errorf("latest run: %s (%v), want 6", names[id], err)
			}
		})
	}
}

// latestRunHere picks the newest run made in the working directory, also
// under an older name of its runbook, from a directory and from a
// database (where a query finds the runs of the runbook's name first).
func TestLatestRunHere(t *testing.T) {
	for _, kind := range []string{"local", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			wd, elsewhere := t.TempDir(), t.TempDir()
			write(t, filepath.Join(wd, "main.hcl"), "runbook \"here\" {\n}\nstep \"core.noop\" \"a\" {\n}\n")
			_, store, where := sessionOn(t, kind)
			names := map[string]string{}
			for _, r := range []struct{ name, runbook, dir string }{
				{"1", "here", wd}, {"2", "other", elsewhere}, {"3", "old", wd}, {"4", "here", elsewhere}, {"5", "x", elsewhere},
			} {
				m := &journal.Meta{ID: journal.NewID(), Runbook: r.runbook, Dir: r.dir}
				j, err := store.Create(m)
				if err != nil {
					t.Fatal(err)
				}
				j.Close()
				names[m.ID] = r.name
			}
			t.Chdir(wd)
			id, here, err := latestRunHere(store, where)
			if err != nil || !here || names[id] != "3" {
				t.Errorf("latest run here: %s, %v (%v); want 3 (the newest made here, under its old name)", names[id], here, err)
			}
			t.Chdir(t.TempDir())
			write(t, "main.hcl", "runbook \"here\" {\n}\n")
			if id, _, err := latestRunHere(store, where); err == nil || !strings.Contains(err.Error(), "no run of the runbook in") {
				t.Errorf("no run here: %s, %v", names[id], err)
			}
		})
	}
}

// sessionOn is a session on a fresh state of kind ("local" or "postgres")
// with its store opened; both are closed at the test's end.
func sessionOn(t *testing.T, kind string) (*Session, store, string) {
	t.Helper()
	opts := Options{StateDir: filepath.Join(t.TempDir(), ".runbook")}
	if kind == "postgres" {
		opts.State = migratedDB(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	store, where, err := s.openStore(s.namedStateDir())
	if err != nil {
		t.Fatal(err)
	}
	return s, store, where
}

package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newRun writes a run that started steps a and b (b succeeded) and was
// interrupted, and returns its journal's path.
func newRun(t *testing.T, s *LocalStore, lock string) (*Meta, string) {
	t.Helper()
	meta := &Meta{Runbook: "rb", Lock: lock}
	j, err := s.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Record{
		{Type: RecAttemptStarted, Step: "a", Attempt: 1},
		{Type: RecAttemptStarted, Step: "b", Attempt: 1},
		{Type: RecStepSucceeded, Step: "b", Attempt: 1},
		{Type: RecRunState, State: RunInterrupted},
	} {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return meta, filepath.Join(s.Location(meta.ID), journalFile)
}

// damage flips a byte inside the n-th line (from 0) of the journal.
func damage(t *testing.T, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := 0
	for range n {
		at += bytes.IndexByte(b[at:], '\n') + 1
	}
	b[at+12] ^= 0x20
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A run whose journal is damaged before its last record is listed, loads
// as corrupt with what could be read, counts as unfinished and cannot be
// reopened.
func TestCorruptRun(t *testing.T) {
	for _, c := range []struct {
		name      string
		line      int
		wantMeta  bool     // the first record was read
		wantSteps []string // what the records before the damage say
	}{
		{"middle record", 2, true, []string{"a"}},
		{"first record", 0, false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewLocal(t.TempDir())
			meta, path := newRun(t, s, "db")
			damage(t, path, c.line)
			ids, err := s.List()
			if err != nil || len(ids) != 1 || ids[0] != meta.ID {
				t.Fatalf("List = %v, %v; want [%s]", ids, err, meta.ID)
			}
			st, err := s.Load(meta.ID)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if st.State != RunCorrupt || !st.Unfinished() || st.Corrupt == nil || st.Corrupt.RunID != meta.ID {
				t.Fatalf("state %q, unfinished %v, corrupt %v", st.State, st.Unfinished(), st.Corrupt)
			}
			if !strings.Contains(st.Warning, "corrupt") || st.Warning != st.Corrupt.Error() {
				t.Errorf("warning %q, corrupt %q", st.Warning, st.Corrupt)
			}
			if st.Meta == nil || st.Meta.ID != meta.ID || (st.Meta.Lock == "db") != c.wantMeta {
				t.Errorf("meta %+v, want id %s, lock read %v", st.Meta, meta.ID, c.wantMeta)
			}
			if strings.Join(st.Order, ",") != strings.Join(c.wantSteps, ",") {
				t.Errorf("steps %v, want %v", st.Order, c.wantSteps)
			}
			j, ost, err := s.Open(meta.ID)
			var ce *CorruptError
			if j != nil || !errors.As(err, &ce) || ost == nil || ost.State != RunCorrupt {
				t.Fatalf("Open = %v, %+v, %v; want a *CorruptError", j, ost, err)
			}
			if b, _ := os.ReadFile(path); len(b) == 0 {
				t.Fatal("Open changed the corrupt journal")
			}
		})
	}
}

// The lock of a run whose journal cannot be read stays held: nothing tells
// whether that run finished.
func TestLockFailsClosed(t *testing.T) {
	for _, c := range []struct {
		name       string
		spoil      func(t *testing.T, s *LocalStore, meta *Meta, path string)
		free       bool
		unreadable string // in LockedError.Unreadable
	}{
		{name: "unfinished", spoil: func(*testing.T, *LocalStore, *Meta, string) {}},
		{name: "corrupt", spoil: func(t *testing.T, _ *LocalStore, _ *Meta, path string) { damage(t, path, 2) }, unreadable: "journal corrupt at byte"},
		{name: "first record damaged", spoil: func(t *testing.T, _ *LocalStore, _ *Meta, path string) { damage(t, path, 0) }, unreadable: "record 1 is unreadable"},
		{name: "unreadable", spoil: func(t *testing.T, _ *LocalStore, _ *Meta, path string) {
			// A directory in the journal's place: opened, but read fails.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, unreadable: "read journal"},
		{name: "finished", spoil: func(t *testing.T, s *LocalStore, meta *Meta, _ string) {
			j, _, err := s.Open(meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Append(&Record{Type: RecRunState, State: RunRolledBack}); err != nil {
				t.Fatal(err)
			}
			j.Close()
		}, free: true},
		{name: "never started", spoil: func(t *testing.T, s *LocalStore, meta *Meta, _ string) {
			if err := os.RemoveAll(s.Location(meta.ID)); err != nil {
				t.Fatal(err)
			}
		}, free: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewLocal(t.TempDir())
			meta, path := newRun(t, s, "db")
			l, err := s.Lock("db", meta.ID, Holder{User: "u"})
			if err != nil {
				t.Fatal(err)
			}
			l.Release(false) // the process is gone, the run keeps the key
			c.spoil(t, s, meta, path)
			l, err = s.Lock("db", "OTHER", Holder{})
			if c.free {
				if err != nil {
					t.Fatalf("want the key free, got %v", err)
				}
				l.Release(true)
				return
			}
			var le *LockedError
			if !errors.As(err, &le) || le.Live || le.Holder.RunID != meta.ID || le.Holder.Key != "db" {
				t.Fatalf("want the key held by %s, got %v", meta.ID, err)
			}
			if c.unreadable == "" {
				if le.Unreadable != nil {
					t.Fatalf("unreadable %v", le.Unreadable)
				}
				return
			}
			if le.Unreadable == nil || !strings.Contains(le.Unreadable.Error(), c.unreadable) {
				t.Fatalf("unreadable %v, want %q", le.Unreadable, c.unreadable)
			}
			for _, want := range []string{"cannot be read", "runbook runs show " + meta.ID, le.File} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if _, serr := os.Stat(le.File); serr != nil {
				t.Errorf("lock file: %v", serr)
			}
			// The run itself may still take its key (to be looked at).
			l, err = s.Lock("db", meta.ID, Holder{})
			if err != nil {
				t.Fatalf("the holder's own run: %v", err)
			}
			l.Release(false)
		})
	}
}

// A damaged lock file holds its key.
func TestLockFileUnreadable(t *testing.T) {
	s := NewLocal(t.TempDir())
	l, err := s.Lock("k", "A", Holder{})
	if err != nil {
		t.Fatal(err)
	}
	l.Release(false)
	files, _ := filepath.Glob(filepath.Join(s.Dir, "locks", "*.json"))
	if len(files) != 1 {
		t.Fatalf("lock files %v", files)
	}
	if err := os.WriteFile(files[0], []byte(`{"run_id":"A","si`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock("k", "B", Holder{}); err == nil || !strings.Contains(err.Error(), files[0]) {
		t.Fatalf("want an error naming %s, got %v", files[0], err)
	}
}

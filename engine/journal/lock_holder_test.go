package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A lock file whose holder is empty or cut short (a process killed between
// creating the file and writing it, or during a write) never prints as an
// empty holder ("run  (@) since 0001-01-01..."): the message says what
// happened and what to do.
func TestEmptyOrTornLockHolder(t *testing.T) {
	emptyHolder := []string{"run  (", "@)", "0001-01-01"}
	noEmptyHolder := func(t *testing.T, msg string) {
		t.Helper()
		for _, bad := range emptyHolder {
			if strings.Contains(msg, bad) {
				t.Errorf("message prints an empty holder (%q): %s", bad, msg)
			}
		}
	}
	write := func(t *testing.T, s *LocalStore, content string) string {
		t.Helper()
		path := s.lockPath("db")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("empty file, nobody: free", func(t *testing.T) {
		s := NewLocal(t.TempDir())
		write(t, s, "")
		if st, err := s.Status("db"); err != nil || st.Active || st.Unreadable != nil || st.Holder.RunID != "" {
			t.Fatalf("status = %+v, %v: want free", st, err)
		}
		l, err := s.Lock("db", "r1", Holder{})
		if err != nil {
			t.Fatal(err)
		}
		l.Release(true)
	})

	for _, torn := range []string{`{"run_id":"20260101-abc","us`, "\x00\x00\x00\x00", "[1]"} {
		t.Run("torn, nobody: "+torn, func(t *testing.T) {
			s := NewLocal(t.TempDir())
			path := write(t, s, torn)
			st, err := s.Status("db")
			if err != nil || st.Active || st.Unreadable == nil {
				t.Fatalf("status = %+v, %v: want inactive, unreadable", st, err)
			}
			_, err = s.Lock("db", "r2", Holder{})
			var le *LockedError
			if !errors.As(err, &le) || le.Live || le.HolderUnreadable == nil {
				t.Fatalf("lock: %v, want a *LockedError with HolderUnreadable", err)
			}
			msg := err.Error()
			noEmptyHolder(t, msg)
			for _, want := range []string{path, "names no holder that can be read", "no process holds the key", "runbook runs", "runbook unlock db"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q: %s", want, msg)
				}
			}
			// What the message says to do works.
			h, err := s.Unlock("db")
			if err != nil {
				t.Fatal(err)
			}
			noEmptyHolder(t, h.String())
			l, err := s.Lock("db", "r2", Holder{})
			if err != nil {
				t.Fatalf("lock after unlock: %v", err)
			}
			l.Release(true)
		})
	}

	for _, content := range []string{"", `{"run_id":"x`} {
		t.Run("held by a process that wrote no holder: "+content, func(t *testing.T) {
			s := NewLocal(t.TempDir())
			path := write(t, s, content)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if held, err := tryLock(f); err != nil || held {
				t.Fatalf("tryLock: %v %v", held, err)
			}
			defer unlock(f)
			if st, err := s.Status("db"); err != nil || !st.Active {
				t.Fatalf("status = %+v, %v: want active", st, err)
			}
			for what, op := range map[string]func() error{
				"lock":   func() error { _, err := s.Lock("db", "r3", Holder{}); return err },
				"unlock": func() error { _, err := s.Unlock("db"); return err },
			} {
				err := op()
				var le *LockedError
				if !errors.As(err, &le) || !le.Live {
					t.Fatalf("%s: %v, want a live *LockedError", what, err)
				}
				msg := err.Error()
				noEmptyHolder(t, msg)
				for _, want := range []string{"held by a running process that has not recorded which run it is", path, "wait for it"} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: message lacks %q: %s", what, want, msg)
					}
				}
			}
		})
	}

	if got := (Holder{}).String(); strings.Contains(got, "run  (") || got == "" {
		t.Errorf("zero holder prints %q", got)
	}
}

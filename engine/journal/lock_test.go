package journal

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deadPID is the pid of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// writeLockFile makes key's lock file name h, as a process that died
// holding it leaves it.
func writeLockFile(t *testing.T, s *LocalStore, key string, h Holder) {
	t.Helper()
	h.Key = key
	b, _ := json.Marshal(h)
	if err := os.MkdirAll(filepath.Join(s.Dir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.lockPath(key), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func unfinishedRun(t *testing.T, s *LocalStore) string {
	t.Helper()
	m := &Meta{}
	j, err := s.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	return m.ID
}

func TestStaleLocksAreReportedAndTakenOver(t *testing.T) {
	host, _ := os.Hostname()
	old := time.Now().Add(-time.Hour).UTC()
	cases := []struct {
		name      string
		holder    Holder
		wantStale string // "" = active
	}{
		{"this host, pid dead", Holder{Host: host, PID: deadPID(t), Heartbeat: time.Now().UTC()}, "is not running"},
		{"this host, pid alive, lock free", Holder{Host: host, PID: os.Getpid(), Heartbeat: time.Now().UTC()}, "no longer holds it"},
		{"other host, heartbeat older than the lease", Holder{Host: "elsewhere", PID: 42, Heartbeat: old}, "last heartbeat from elsewhere"},
		{"other host, fresh heartbeat", Holder{Host: "elsewhere", PID: 42, Heartbeat: time.Now().UTC()}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewLocal(t.TempDir())
			s.Lease = time.Minute
			id := unfinishedRun(t, s)
			c.holder.RunID, c.holder.Since = id, old
			writeLockFile(t, s, "db", c.holder)

			st, err := s.Status("db")
			if err != nil {
				t.Fatal(err)
			}
			if st.Active != (c.wantStale == "") || !strings.Contains(st.Stale, c.wantStale) {
				t.Fatalf("status = %+v, want stale %q", st, c.wantStale)
			}
			var le *LockedError
			_, err = s.Lock("db", "NEW", Holder{})
			if !errors.As(err, &le) || le.Live != (c.wantStale == "") {
				t.Fatalf("new run: %v", err)
			}
			if c.wantStale != "" && !strings.Contains(err.Error(), "stale: ") {
				t.Fatalf("error does not say the lock is stale: %v", err)
			}
			// The run itself takes a stale lock over, never an active one.
			l, err := s.Lock("db", id, Holder{PID: os.Getpid()})
			if c.wantStale == "" {
				if !errors.As(err, &le) || !le.Live {
					t.Fatalf("an active holder's lock was taken over: %v", err)
				}
				if _, err := s.Unlock("db"); !errors.As(err, &le) || !le.Live {
					t.Fatalf("an active holder's lock was unlocked: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("takeover: %v", err)
			}
			l.Release(false)
			h, err := s.Unlock("db")
			if err != nil || h.RunID != id {
				t.Fatalf("unlock = %+v, %v", h, err)
			}
			l, err = s.Lock("db", "NEW", Holder{})
			if err != nil {
				t.Fatalf("after unlock: %v", err)
			}
			l.Release(true)
		})
	}
}

func TestActiveLockIsNeverBroken(t *testing.T) {
	s := NewLocal(t.TempDir())
	s.Lease = 30 * time.Millisecond
	id := unfinishedRun(t, s)
	l, err := s.Lock("db", id, Holder{Host: "elsewhere", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(true)
	time.Sleep(100 * time.Millisecond) // past the lease: the heartbeat keeps it fresh
	var le *LockedError
	for _, who := range []string{id, "NEW"} {
		if _, err := s.Lock("db", who, Holder{}); !errors.As(err, &le) || !le.Live {
			t.Fatalf("lock by %s: %v", who, err)
		}
	}
	if _, err := s.Unlock("db"); !errors.As(err, &le) || !le.Live {
		t.Fatalf("unlock: %v", err)
	}
	st, err := s.Status("db")
	if err != nil || !st.Active || !st.Holder.Heartbeat.After(st.Holder.Since.Add(s.Lease)) {
		t.Fatalf("status = %+v, %v: want active with a fresh heartbeat", st, err)
	}
}

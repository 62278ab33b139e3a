package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/internal/tick"
)

// DefaultLease is how long a lock holder on another host counts as alive
// after its last heartbeat. Holders refresh their heartbeat every third of
// the lease.
const DefaultLease = 90 * time.Second

// Holder says who holds a lock key.
type Holder struct {
	RunID string    `json:"run_id"`
	User  string    `json:"user,omitempty"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"` // 0: no process holds the key (released, run unfinished)
	Since time.Time `json:"since"`
	// Heartbeat is refreshed while the holding process lives.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
	Key       string    `json:"key"`
}

func (h Holder) String() string {
	if h.RunID == "" {
		// Never "run  (@) since 0001-01-01...": a lock file that is empty
		// or cut short names nobody.
		return "an unknown holder"
	}
	s := fmt.Sprintf("run %s (%s@%s", h.RunID, h.User, h.Host)
	if h.PID != 0 {
		s += fmt.Sprintf(", pid %d", h.PID)
	}
	return s + ") since " + h.Since.Local().Format(time.RFC3339)
}

// LockedError is returned when another live process, or an unfinished
// run, holds the lock key.
type LockedError struct {
	Holder Holder
	// Live is true when the holding process is running now (its OS lock is
	// held, or it is on another host and its heartbeat is within the
	// lease): such a lock is never broken. False when the holder is an
	// unfinished run nobody runs (resume or roll it back, or unlock).
	Live bool
	// Stale says, when Live is false, why the holding process counts as
	// gone ("" when the run was left unfinished by a process that ended
	// normally).
	Stale string
	// Unreadable is set (Live false) when the holding run's journal cannot
	// be read: it is corrupt (a *CorruptError) or an I/O error stops it.
	// The lock is then held, since nothing tells whether the run finished,
	// until someone checks the run and unlocks the key.
	Unreadable error
	// HolderUnreadable is set when the lock file's content names no holder
	// (see LockStatus.Unreadable); Holder is then zero but for Key.
	HolderUnreadable error
	// File is the lock file (or the database row).
	File string
	// Lease, for a lock held as a lease in a database, is how long its
	// holder counts as alive after its last heartbeat.
	Lease time.Duration
	// StateFlag is what the printed commands need to find the state
	// directory (" -state-dir DIR", or ""); set by the caller.
	StateFlag string
}

func (e *LockedError) Error() string {
	unlock := fmt.Sprintf("runbook unlock%s %s", e.StateFlag, ShellWord(e.Holder.Key))
	switch {
	case e.Live && e.Holder.RunID == "":
		// A holder writes itself right after it takes the OS lock: one that
		// has not, after a while, is stopped or hung there.
		what := "is empty"
		if e.HolderUnreadable != nil {
			what = fmt.Sprintf("cannot be read: %v", e.HolderUnreadable)
		}
		return fmt.Sprintf("lock %q is held by a running process that has not recorded which run it is (its lock file %s %s): it is starting a run, or is stopped or hung; wait for it, or end the process that has %s open: the lock is free as soon as it ends",
			e.Holder.Key, e.File, what, e.File)
	case e.HolderUnreadable != nil:
		return fmt.Sprintf("lock %q: its lock file %s names no holder that can be read (%v), as when a crash cuts the writing of it short; no process holds the key now. Check that no run of it is left unfinished (runbook runs%s), then release the lock (%s)",
			e.Holder.Key, e.File, e.HolderUnreadable, e.StateFlag, unlock)
	case e.Live && e.Lease > 0:
		return fmt.Sprintf("lock %q is held by %s, which is running: wait for it to end (if its process was killed, the lock is stale %s after its last heartbeat, and its run can then be resumed)", e.Holder.Key, e.Holder, e.Lease)
	case e.Live:
		return fmt.Sprintf("lock %q is held by %s, which is running: wait for it to end", e.Holder.Key, e.Holder)
	case e.Unreadable != nil:
		return fmt.Sprintf("lock %q is held by %s, whose journal cannot be read (%v): check what it did (runbook runs show%s %s) and undo it by hand if needed, then release the lock (%s, which removes the holder from %s)",
			e.Holder.Key, e.Holder, e.Unreadable, e.StateFlag, e.Holder.RunID, unlock, e.File)
	}
	gone := ""
	if e.Stale != "" {
		gone = " (stale: " + e.Stale + ")"
	}
	return fmt.Sprintf("lock %q is held by unfinished %s%s: resume it (runbook resume%s %s) or roll it back (runbook rollback%s %s), or release the lock (%s)",
		e.Holder.Key, e.Holder, gone, e.StateFlag, e.Holder.RunID, e.StateFlag, e.Holder.RunID, unlock)
}

// ShellWord quotes s for a POSIX shell when needed.
func ShellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@%+=,", r)) {
			return "'" + string(bytes.ReplaceAll([]byte(s), []byte("'"), []byte(`'\''`))) + "'"
		}
	}
	if s == "" {
		return "''"
	}
	return s
}

// Lock is a held lock key.
type Lock interface {
	// Release gives the key up. finished=false keeps the key attached to
	// the (unfinished, resumable) run, so that only resuming or rolling back
	// that run (or unlock) can take it again; the process-level lock is
	// dropped either way.
	Release(finished bool) error
}

// localLock is a held lock file. A heartbeat goroutine rewrites the holder
// every lease/3 until Release; mu serializes its writes with Release's.
type localLock struct {
	path string
	stop chan struct{}  // closed by Release: the heartbeat ends
	done sync.WaitGroup // the heartbeat goroutine

	mu  sync.Mutex // guards f and who
	f   *os.File   // nil once released
	who Holder
}

// lockPath is key's lock file.
func (s *LocalStore) lockPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.Dir, "locks", hex.EncodeToString(sum[:12])+".json")
}

func (s *LocalStore) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return DefaultLease
}

// LockStatus is what a lock file says about its holder.
type LockStatus struct {
	Holder Holder // zero when nobody holds the key
	// Active: the holder's process runs (see LockedError.Live).
	Active bool
	// Stale: why the holder's process counts as gone ("" when it released
	// the key normally, or when Active).
	Stale string
	// Unreadable is why the lock file's content names no holder (it is not
	// a whole holder: a write cut short, or another file in its place);
	// Holder is then zero. nil for a holder, and for an empty file (nobody).
	Unreadable error
}

// status reads f's holder; flockHeld says whether another process holds
// f's OS lock.
func (s *LocalStore) status(f *os.File, flockHeld bool) (LockStatus, error) {
	h, err := readHolder(f)
	st := LockStatus{Holder: h}
	var ioErr *fs.PathError
	switch {
	case errors.As(err, &ioErr):
		return st, err
	case err != nil:
		st.Unreadable = err
		st.Active = flockHeld
		return st, nil
	}
	switch {
	case flockHeld:
		st.Active = true
	case h.RunID == "" || h.PID == 0:
	case h.Host == "" || h.Host == hostname():
		// The kernel drops the OS lock when its process ends: a local
		// holder whose lock is free is gone, whatever its pid now names.
		if pidAlive(h.PID) {
			st.Stale = fmt.Sprintf("pid %d on this host no longer holds it", h.PID)
		} else {
			st.Stale = fmt.Sprintf("pid %d on this host is not running", h.PID)
		}
	default:
		// Another host's OS lock may not reach us (network file systems):
		// its heartbeat says whether it lives.
		age := time.Since(h.Heartbeat)
		if h.Heartbeat.IsZero() {
			age = time.Since(h.Since)
		}
		if age <= s.lease() {
			st.Active = true
		} else {
			st.Stale = fmt.Sprintf("last heartbeat from %s %s ago, lease %s", h.Host, age.Round(time.Second), s.lease())
		}
	}
	return st, nil
}

// Status reports who holds key, without taking it.
func (s *LocalStore) Status(key string) (LockStatus, error) {
	f, err := os.OpenFile(s.lockPath(key), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return LockStatus{}, nil
	}
	if err != nil {
		return LockStatus{}, err
	}
	defer f.Close()
	held, err := tryLock(f)
	if err != nil {
		return LockStatus{}, fmt.Errorf("lock %q: %w", key, err)
	}
	if !held {
		defer unlock(f)
	}
	st, err := s.status(f, held)
	st.Holder.Key = key
	return st, err
}

// openLock opens key's lock file and takes its OS lock. held reports that
// another process has it (f is then closed). A probe (Status) holds the OS
// lock for an instant: an empty holder behind a held lock is retried.
func (s *LocalStore) openLock(key string) (f *os.File, held bool, err error) {
	path := s.lockPath(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	for try := 0; ; try++ {
		held, err = tryLock(f)
		if err != nil {
			f.Close()
			return nil, false, fmt.Errorf("lock %q: %w", key, err)
		}
		if !held {
			return f, false, nil
		}
		if h, _ := readHolder(f); h.RunID != "" || try == 10 {
			return f, true, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Lock takes key for runID. The lock file is held with an OS lock
// (flock(2), LockFileEx on Windows) while the process lives, so a crashed
// holder's lock is free at once; the file also names the run, its host,
// pid and a heartbeat refreshed while the lock is held. A new run is
// refused while the holder is active (see LockStatus), or while the named
// run is unfinished or its journal unreadable (see LockedError); the run
// itself (resume, rollback) takes a stale holder's lock over.
func (s *LocalStore) Lock(key, runID string, who Holder) (Lock, error) {
	f, held, err := s.openLock(key)
	if err != nil {
		return nil, err
	}
	path := f.Name()
	fail := func(err error) (Lock, error) {
		if !held {
			_ = unlock(f)
		}
		f.Close()
		return nil, err
	}
	st, err := s.status(f, held)
	st.Holder.Key = key
	if st.Active {
		return fail(&LockedError{Holder: st.Holder, Live: true, File: path, HolderUnreadable: st.Unreadable})
	}
	if err != nil {
		return fail(fmt.Errorf("lock %q: the lock file %s cannot be read (%w)", key, path, err))
	}
	if st.Unreadable != nil {
		return fail(&LockedError{Holder: st.Holder, File: path, HolderUnreadable: st.Unreadable})
	}
	if le := stillHeld(s, st, runID, path); le != nil {
		return fail(le)
	}
	who.RunID = runID
	who.Key = key
	if who.Since.IsZero() {
		who.Since = time.Now().UTC()
	}
	who.Heartbeat = time.Now().UTC()
	if err := writeHolder(f, &who); err != nil {
		return fail(err)
	}
	l := &localLock{f: f, path: path, who: who, stop: make(chan struct{})}
	l.done.Add(1)
	go l.heartbeat(s.lease() / 3)
	return l, nil
}

// stillHeld is the error that keeps runID from taking a key whose holder no
// process has (st, not Active): nil when st names no run, runID itself, or
// a run known finished. Fail closed: only a run known finished, or one that
// never wrote its first record, frees the key. file says where the lock is.
func stillHeld(s interface{ Load(string) (*State, error) }, st LockStatus, runID, file string) *LockedError {
	h := st.Holder
	if h.RunID == "" || h.RunID == runID {
		return nil
	}
	rs, err := s.Load(h.RunID)
	le := &LockedError{Holder: h, File: file, Stale: st.Stale}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		le.Unreadable = err
	case rs.Corrupt != nil:
		le.Unreadable = rs.Corrupt
	case !rs.Unfinished():
		return nil
	}
	return le
}

// heartbeat refreshes the holder's heartbeat every interval until Release.
func (l *localLock) heartbeat(interval time.Duration) {
	defer l.done.Done()
	tick.Every(l.stop, interval, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.f != nil {
			l.who.Heartbeat = time.Now().UTC()
			_ = writeHolder(l.f, &l.who)
		}
		return true
	})
}

// Unlock releases key whatever run holds it, unless its holder is active
// (a *LockedError with Live set): for a stale lock, or a run left
// unfinished that is not to be resumed or rolled back. It returns the
// holder it removed (zero when the key was free).
func (s *LocalStore) Unlock(key string) (Holder, error) {
	if _, err := os.Stat(s.lockPath(key)); errors.Is(err, fs.ErrNotExist) {
		return Holder{}, nil
	}
	f, held, err := s.openLock(key)
	if err != nil {
		return Holder{}, err
	}
	defer f.Close()
	if !held {
		defer unlock(f)
	}
	st, _ := s.status(f, held)
	st.Holder.Key = key
	if st.Active {
		return Holder{}, &LockedError{Holder: st.Holder, Live: true, File: f.Name(), HolderUnreadable: st.Unreadable}
	}
	return st.Holder, writeHolder(f, nil)
}

// readHolder reads the holder f names; an empty file names none. Only the
// first JSON value counts: a heartbeat rewrites the file in place.
func readHolder(f *os.File) (Holder, error) {
	var h Holder
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return h, err
	}
	b, err := io.ReadAll(f)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return h, err
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&h); err != nil {
		return Holder{}, fmt.Errorf("%d bytes that are not a whole holder: %v", len(b), err)
	}
	return h, nil
}

// writeHolder writes h (nil: none) over f's content: the JSON first, then
// the file cut to its length, so that a reader sees one whole value.
func writeHolder(f *os.File, h *Holder) error {
	b := []byte("{}")
	if h != nil {
		var err error
		if b, err = json.Marshal(h); err != nil {
			return err
		}
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	return f.Sync()
}

func (l *localLock) Release(finished bool) error {
	close(l.stop)
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.f
	l.f = nil
	var err error
	if finished {
		err = writeHolder(f, nil)
	} else {
		// The run stays unfinished and holds the key; no process does.
		who := l.who
		who.PID, who.Heartbeat = 0, time.Time{}
		err = writeHolder(f, &who)
	}
	_ = unlock(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var hostOnce = sync.OnceValue(func() string { h, _ := os.Hostname(); return h })

func hostname() string { return hostOnce() }

// RemoveLock deletes key's lock file when no holder is recorded in it (a
// pruned run's own lock); a held key is left as it is.
func (s *LocalStore) RemoveLock(key string) error {
	st, err := s.Status(key)
	if err != nil || st.Active || st.Holder.RunID != "" || st.Unreadable != nil {
		return err
	}
	if err := os.Remove(s.lockPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Holder says who holds a lock key.
type Holder struct {
	RunID string    `json:"run_id"`
	User  string    `json:"user,omitempty"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	Since time.Time `json:"since"`
	Key   string    `json:"key"`
}

func (h Holder) String() string {
	return fmt.Sprintf("run %s (%s@%s, pid %d) since %s", h.RunID, h.User, h.Host, h.PID, h.Since.Local().Format(time.RFC3339))
}

// LockedError is returned when another live process, or an unfinished
// run, holds the lock key.
type LockedError struct {
	Holder Holder
	// Live is true when the holding process is running now; false when the
	// holder is an unfinished run nobody runs (resume or roll it back).
	Live bool
	// Unreadable is set (Live false) when the holding run's journal cannot
	// be read: it is corrupt (a *CorruptError) or an I/O error stops it.
	// The lock is then held, since nothing tells whether the run finished,
	// until someone checks the run and removes File.
	Unreadable error
	// File is the lock file.
	File string
}

func (e *LockedError) Error() string {
	switch {
	case e.Live:
		return fmt.Sprintf("lock %q is held by %s", e.Holder.Key, e.Holder)
	case e.Unreadable != nil:
		return fmt.Sprintf("lock %q is held by %s, whose journal cannot be read (%v): check what it did (runbook runs show %s) and undo it by hand if needed, then remove the lock file %s",
			e.Holder.Key, e.Holder, e.Unreadable, e.Holder.RunID, e.File)
	}
	return fmt.Sprintf("lock %q is held by unfinished %s: resume it (runbook resume %s) or roll it back (runbook rollback %s) first",
		e.Holder.Key, e.Holder, e.Holder.RunID, e.Holder.RunID)
}

// Lock is a held lock key.
type Lock interface {
	// Release gives the key up. finished=false keeps the key attached to
	// the (unfinished, resumable) run, so that only resuming or rolling back
	// that run can take it again; the process-level lock is dropped either
	// way.
	Release(finished bool) error
}

type localLock struct {
	f    *os.File
	path string
}

// Lock takes key for runID. The lock file is held with an OS lock
// (flock(2), LockFileEx on Windows) while the process lives, so a crashed
// holder's lock is free at once; the file also names the run. A new run is
// refused while a live process holds the key or while the named run is
// unfinished or its journal unreadable (see LockedError); the run itself
// (resume, rollback) can always take it over once its process is gone.
func (s *LocalStore) Lock(key, runID string, who Holder) (Lock, error) {
	dir := filepath.Join(s.Dir, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(dir, hex.EncodeToString(sum[:12])+".json")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if held, err := tryLock(f); held || err != nil {
		h, _ := readHolder(f)
		f.Close()
		if held {
			h.Key = key
			return nil, &LockedError{Holder: h, Live: true, File: path}
		}
		return nil, fmt.Errorf("lock %q: %w", key, err)
	}
	h, err := readHolder(f)
	if err != nil {
		_ = unlock(f)
		f.Close()
		return nil, fmt.Errorf("lock %q: the lock file %s is unreadable (%w): remove it once no run holds the key", key, path, err)
	}
	if h.RunID != "" && h.RunID != runID {
		// Is the previous holder still unfinished? Fail closed: only a run
		// known finished, or one that never wrote its first record, frees
		// the key.
		st, err := s.Load(h.RunID)
		le := &LockedError{Holder: h, File: path}
		le.Holder.Key = key
		switch {
		case errors.Is(err, fs.ErrNotExist):
			le = nil
		case err != nil:
			le.Unreadable = err
		case st.Corrupt != nil:
			le.Unreadable = st.Corrupt
		case !st.Unfinished():
			le = nil
		}
		if le != nil {
			_ = unlock(f)
			f.Close()
			return nil, le
		}
	}
	who.RunID = runID
	who.Key = key
	if who.Since.IsZero() {
		who.Since = time.Now().UTC()
	}
	if err := writeHolder(f, &who); err != nil {
		f.Close()
		return nil, err
	}
	return &localLock{f: f, path: path}, nil
}

// readHolder reads the holder f names; an empty file names none.
func readHolder(f *os.File) (Holder, error) {
	var h Holder
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return h, err
	}
	b, err := io.ReadAll(f)
	if err != nil || len(b) == 0 {
		return h, err
	}
	return h, json.Unmarshal(b, &h)
}

func writeHolder(f *os.File, h *Holder) error {
	b := []byte("{}")
	if h != nil {
		var err error
		if b, err = json.Marshal(h); err != nil {
			return err
		}
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Sync()
}

func (l *localLock) Release(finished bool) error {
	var err error
	if finished {
		err = writeHolder(l.f, nil)
	}
	_ = unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Store keeps runs. The local Store (NewLocal) needs no server.
type Store interface {
	// Create starts a new run journal and writes its run_started record.
	// meta.ID is set when empty.
	Create(meta *Meta) (Journal, error)
	// Open reopens a run for appending (resume, rollback) and returns its
	// state. A torn last record is dropped (State.Warning says so). A
	// corrupt run is refused with an error wrapping *CorruptError.
	Open(id string) (Journal, *State, error)
	// Load reads a run without writing. A run whose journal is damaged is
	// returned in State RunCorrupt, not as an error (see LocalStore.Load).
	Load(id string) (*State, error)
	// List returns every run's id, newest first, corrupt runs included.
	List() ([]string, error)
	// Resolve turns a unique prefix of a run id into the id.
	Resolve(prefix string) (string, error)
	// Lock takes the lock key for run id (see LocalStore.Lock).
	Lock(key, runID string, who Holder) (Lock, error)
	// Location is a human-readable place of a run's journal.
	Location(id string) string
}

// Journal appends records to one run.
type Journal interface {
	// Append returns once r is durable (written and synced; concurrent
	// Appends share one sync).
	Append(r *Record) error
	// AppendNoWait queues r; the next Append (or Close) makes it durable.
	// Only for records whose loss in a crash is harmless: never a step's
	// start, which must be durable before its plugin acts.
	AppendNoWait(r *Record) error
	Close() error
}

// NewID returns a new run id (a ULID: sortable by time).
func NewID() string { return ulid.Make().String() }

// LocalStore keeps each run in <dir>/runs/<id>/journal.ndjson and locks in
// <dir>/locks/.
type LocalStore struct {
	Dir string
	// NoSync disables fsync (engine benchmarks without disk costs only).
	NoSync bool
	// Lease is how long a lock holder on another host counts as alive
	// after its last heartbeat (0: DefaultLease).
	Lease time.Duration
}

// NewLocal returns the store rooted at dir (usually `.runbook` beside the
// runbook).
func NewLocal(dir string) *LocalStore { return &LocalStore{Dir: dir} }

var _ Store = (*LocalStore)(nil)

const journalFile = "journal.ndjson"

func (s *LocalStore) runDir(id string) string { return filepath.Join(s.Dir, "runs", id) }

// Location is the run's directory.
func (s *LocalStore) Location(id string) string { return s.runDir(id) }

// Create implements Store.
func (s *LocalStore) Create(meta *Meta) (Journal, error) {
	if meta.ID == "" {
		meta.ID = NewID()
	}
	dir := s.runDir(meta.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create run dir: %w", err)
	}
	// The journal appears under its name only once its run_started record
	// is on disk, so a crash here never leaves a run without metadata.
	tmp := filepath.Join(dir, journalFile+".new")
	l, err := OpenLog(tmp, 0)
	if err != nil {
		return nil, err
	}
	l.NoSync = s.NoSync
	if err := l.Append(&Record{Type: RecRunStarted, Meta: meta, Time: meta.Started}); err != nil {
		l.Close()
		return nil, err
	}
	// Closed before the rename: Windows renames no open file.
	if err := l.Close(); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, journalFile)
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	syncDir(dir)
	syncDir(filepath.Dir(dir))
	if l, err = OpenLog(path, 1); err != nil {
		return nil, err
	}
	l.NoSync = s.NoSync
	return l, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// CorruptError says where and why a run's journal cannot be read: a record
// before the last is damaged (a torn last record is only a warning), or the
// journal lacks its first record. Store.Load reports such a run as a State
// in RunCorrupt with this error in State.Corrupt; Store.Open refuses it with
// an error wrapping it.
type CorruptError struct {
	RunID  string // empty from ReadRecords, which knows no run
	Offset int64  // byte where the damage starts
	Reason string
}

func (e *CorruptError) Error() string {
	run := ""
	if e.RunID != "" {
		run = "run " + e.RunID + ": "
	}
	return fmt.Sprintf("%sjournal corrupt at byte %d: %s", run, e.Offset, e.Reason)
}

// notFoundError is a run without a journal: it never started (a crash
// before its first record was written), or its directory was removed.
type notFoundError struct{ id, dir string }

func (e *notFoundError) Error() string { return fmt.Sprintf("run %s not found in %s", e.id, e.dir) }
func (e *notFoundError) Unwrap() error { return fs.ErrNotExist }

// read replays run id's journal. A corrupt journal is no error: see Load.
// validLen is the length of its valid prefix.
func (s *LocalStore) read(id string) (st *State, validLen int64, err error) {
	path := filepath.Join(s.runDir(id), journalFile)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, &notFoundError{id: id, dir: s.Dir}
		}
		return nil, 0, fmt.Errorf("run %s: %w", id, err)
	}
	defer f.Close()
	return replayJournal(id, f)
}

// replayJournal reads run id's journal lines from r (see ReadRecords) and
// replays them. A corrupt journal is no error: see Load.
func replayJournal(id string, r io.Reader) (st *State, validLen int64, err error) {
	recs, valid, warn, err := ReadRecords(r)
	var ce *CorruptError
	if err != nil && !errors.As(err, &ce) {
		return nil, 0, fmt.Errorf("run %s: read journal: %w", id, err)
	}
	if ce == nil && (len(recs) == 0 || recs[0].Type != RecRunStarted || recs[0].Meta == nil) {
		ce = &CorruptError{Reason: "the journal has no run_started record"}
	}
	st = Replay(recs)
	st.Warning = warn
	if ce != nil {
		ce.RunID = id
		st.State, st.Corrupt, st.Warning = RunCorrupt, ce, ce.Error()
		if st.Meta == nil {
			st.Meta = &Meta{ID: id}
		}
	}
	return st, valid, nil
}

// Load implements Store. A run whose journal is damaged before its last
// record is no error: it is returned in State RunCorrupt, with what the
// records before the damage say (Meta from its first record, or only the
// ID when that one is unreadable), the damage in State.Corrupt and
// State.Warning. Callers that list runs thus show it; it counts as
// unfinished, so it keeps its lock key. An error means the journal could
// not be read at all (an I/O error), or the run does not exist (the error
// then matches fs.ErrNotExist).
func (s *LocalStore) Load(id string) (*State, error) {
	st, _, err := s.read(id)
	return st, err
}

// Open implements Store. A torn tail is cut off before appending. A corrupt
// run is refused (an error wrapping its *CorruptError, with its State):
// appending after the damage would bury it.
func (s *LocalStore) Open(id string) (Journal, *State, error) {
	st, valid, err := s.read(id)
	if err != nil {
		return nil, nil, err
	}
	if st.Corrupt != nil {
		return nil, st, fmt.Errorf("%w: it can be neither resumed nor rolled back; check what it did and undo that by hand", st.Corrupt)
	}
	path := filepath.Join(s.runDir(id), journalFile)
	if fi, err := os.Stat(path); err != nil {
		return nil, nil, err
	} else if fi.Size() > valid {
		// A torn record left by a crash.
		if err := os.Truncate(path, valid); err != nil {
			return nil, nil, fmt.Errorf("drop the journal's torn tail: %w", err)
		}
	}
	l, err := OpenLog(path, st.Seq)
	if err != nil {
		return nil, nil, err
	}
	l.NoSync = s.NoSync
	return l, st, nil
}

// List implements Store.
func (s *LocalStore) List() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "runs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		// A run whose journal never got its first record did not start.
		if _, err := os.Stat(filepath.Join(s.Dir, "runs", e.Name(), journalFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	return ids, nil
}

// Resolve implements Store.
func (s *LocalStore) Resolve(prefix string) (string, error) {
	ids, err := s.List()
	if err != nil {
		return "", err
	}
	return resolveAmong(prefix, s.Dir, ids)
}

// resolveAmong finds the run id prefix names among ids (where: the
// store, for messages).
func resolveAmong(prefix, where string, ids []string) (string, error) {
	var match []string
	up := strings.ToUpper(prefix)
	for _, id := range ids {
		if id == up {
			return id, nil
		}
		if strings.HasPrefix(id, up) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no run %q in %s", prefix, where)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("run id %q is ambiguous: %s", prefix, strings.Join(match, ", "))
}

// Remove deletes run id's journal directory (pruning). The caller makes
// sure no process works on the run.
func (s *LocalStore) Remove(id string) error {
	if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return fmt.Errorf("invalid run id %q", id)
	}
	if err := os.RemoveAll(s.runDir(id)); err != nil {
		return err
	}
	syncDir(filepath.Join(s.Dir, "runs"))
	return nil
}

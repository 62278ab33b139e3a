package nextcloud

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// trackDoc is the tracking document of one migration, with the fields of
// io.cozy.nextcloud.migrations (progress kept nested; errors and skipped
// always lists, never null).
type trackDoc struct {
	ID              string        `json:"_id"`
	Rev             string        `json:"_rev,omitempty"` // CouchDB's revision
	SchemaVersion   int           `json:"schema_version"`
	Instance        string        `json:"workplace_fqdn"`
	AccountID       string        `json:"account_id"`
	Status          string        `json:"status"` // pending|running|completed|failed|canceled
	TargetDir       string        `json:"target_dir"`
	SourcePath      string        `json:"source_path"`
	Progress        trackProgress `json:"progress"`
	Errors          []trackError  `json:"errors"`
	Skipped         []trackSkip   `json:"skipped"`
	CreatedAt       string        `json:"created_at"`
	StartedAt       *string       `json:"started_at"`
	FinishedAt      *string       `json:"finished_at"`
	CancelRequested bool          `json:"cancel_requested"`
	CanceledAt      *string       `json:"canceled_at"`
	SourceDeletedAt *string       `json:"source_deleted_at"`
	LastHeartbeatAt *string       `json:"last_heartbeat_at"`
	FailureReason   string        `json:"failure_reason,omitempty"`

	// others are the fields other writers (cozy-stack) keep in the
	// document, written back as read.
	others map[string]json.RawMessage
}

// decodeTrackDoc reads a tracking document, keeping the fields it does
// not know.
func decodeTrackDoc(b []byte) (*trackDoc, error) {
	var d trackDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &d.others); err != nil {
		return nil, err
	}
	return &d, nil
}

// body is the document to write: its fields, and the others as read.
func (d *trackDoc) body() (map[string]json.RawMessage, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range d.others {
		if _, ok := m[k]; !ok && k != "_rev" {
			m[k] = v
		}
	}
	return m, nil
}

type trackProgress struct {
	FilesImported int64 `json:"files_imported"`
	FilesTotal    int64 `json:"files_total"`
	BytesImported int64 `json:"bytes_imported"`
	BytesTotal    int64 `json:"bytes_total"`
}

type trackError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	At      string `json:"at"`
}

type trackSkip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Size   int64  `json:"size"`
}

func (d *trackDoc) active() bool { return d.Status == "pending" || d.Status == "running" }

// account is the io.cozy.accounts-style document holding the Nextcloud
// credentials a consumer uses; it is the one place the password is kept.
type account struct {
	ID           string      `json:"_id"`
	AccountType  string      `json:"account_type"`
	WebdavUserID string      `json:"webdav_user_id"`
	Auth         accountAuth `json:"auth"`
}

type accountAuth struct {
	URL      string `json:"url"`
	Login    string `json:"login"`
	Password string `json:"password"`
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func newMigrationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fileStore keeps tracking documents as JSON files:
// DIR/migrations/INSTANCE/ID.json, accounts in DIR/accounts/INSTANCE.json
// (mode 0600), and a lock file per instance while a request is made.
type fileStore struct{ dir string }

var instanceRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-_:]*$`)

func checkInstance(instance string) error {
	if !instanceRe.MatchString(instance) || len(instance) > 253 {
		return sdk.Errorf(sdk.KindInvalid, false, "give the instance's domain, e.g. alice.example.net", "invalid instance %q", instance)
	}
	return nil
}

func (s fileStore) docPath(instance, id string) string {
	return filepath.Join(s.dir, "migrations", instance, id+".json")
}

// lock takes the instance's lock.
func (s fileStore) lock(instance string) (func(), error) { return LockTracking(s.dir, instance) }

// LockTracking takes the lock on an instance's tracking documents under
// dir (DIR/locks/INSTANCE.lock, created exclusively, holding the owner's
// pid and host), which every writer of those documents takes: the actions
// of this plugin and `runbook consume`. A lock whose owner died on this
// host, or older than two minutes, is taken over.
func LockTracking(dir, instance string) (func(), error) {
	const staleAfter = 2 * time.Minute
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "locks", instance+".lock")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	for i := 0; i < 100; i++ {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d %s\n", os.Getpid(), host)
			f.Close()
			return func() { _ = os.Remove(p) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if lockAbandoned(p, host, staleAfter) {
			_ = os.Remove(p)
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, sdk.Errorf(sdk.KindConflict, true, "another request for this instance is being made; retry", "instance %s is locked (%s)", instance, p)
}

// lockAbandoned reports whether a lock file's owner is gone: a process of
// this host that no longer runs, or a lock older than staleAfter.
func lockAbandoned(p, host string, staleAfter time.Duration) bool {
	st, err := os.Stat(p)
	if err != nil {
		return false
	}
	if time.Since(st.ModTime()) > staleAfter {
		return true
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	var pid int
	var owner string
	if n, _ := fmt.Sscanf(string(b), "%d %s", &pid, &owner); n == 2 && owner == host && pid > 0 {
		return !processAlive(pid)
	}
	return false
}

// activeDoc returns a pending or running migration of the instance.
func (s fileStore) activeDoc(instance string) (*trackDoc, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "migrations", instance))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		d, err := s.get(instance, e.Name()[:len(e.Name())-5])
		if err != nil {
			return nil, err
		}
		if d.active() {
			return d, nil
		}
	}
	return nil, nil
}

func (s fileStore) get(instance, id string) (*trackDoc, error) {
	b, err := os.ReadFile(s.docPath(instance, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, sdk.Errorf(sdk.KindNotFound, false, "check the instance and the migration id", "no migration %s for %s", id, instance)
	}
	if err != nil {
		return nil, err
	}
	d, err := decodeTrackDoc(b)
	if err != nil {
		return nil, fmt.Errorf("tracking document %s: %w", id, err)
	}
	return d, nil
}

func (s fileStore) put(d *trackDoc) error {
	if d.Errors == nil {
		d.Errors = []trackError{}
	}
	if d.Skipped == nil {
		d.Skipped = []trackSkip{}
	}
	m, err := d.body()
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.docPath(d.Instance, d.ID), b, 0o644)
}

func (s fileStore) putAccount(instance string, a *account) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "accounts", instance+".json"), b, 0o600)
}

// writeAtomic replaces a file with data (temporary file, fsync, rename).
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

package session

import (
	"context"
	"fmt"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
)

// StateEnv selects the state of every command, like -state (the flags
// win): a postgres:// URL keeps runs and locks in that database; anything
// else is a state directory, like RUNBOOK_STATE_DIR.
const StateEnv = "RUNBOOK_STATE"

// LeaseEnv sets how long a database lock holder counts as alive after its
// last heartbeat (a Go duration, e.g. 15s; default journal.DefaultPGLease):
// a killed process's run can be resumed elsewhere once it has passed.
const LeaseEnv = "RUNBOOK_STATE_LEASE"

// store is what the session needs of a state: the journal.Store, and what
// listing, unlocking and pruning runs use. The local store and the
// PostgreSQL one both are.
type store interface {
	journal.Store
	Status(key string) (journal.LockStatus, error)
	Unlock(key string) (journal.Holder, error)
	Remove(id string) error
	RemoveLock(key string) error
}

var (
	_ store = (*journal.LocalStore)(nil)
	_ store = (*journal.PGStore)(nil)
)

// stateSpec is the state the caller (-state) or RUNBOOK_STATE names; ""
// when neither does, and RUNBOOK_STATE is ignored when the caller named a
// state directory (-state-dir).
func (s *Session) stateSpec() string {
	if s.opts.State != "" {
		return s.opts.State
	}
	if s.opts.StateDir != "" {
		return ""
	}
	return s.opts.Getenv(StateEnv)
}

// databaseURL is the PostgreSQL URL the state spec names ("" for a state
// directory).
func (s *Session) databaseURL() string {
	if s.opts.DB != nil {
		return s.opts.DB.Where()
	}
	if spec := s.stateSpec(); journal.IsPostgresURL(spec) {
		return spec
	}
	return ""
}

// Where names the state of the commands that name a run: the database
// (its URL without the password), or the state directory.
func (s *Session) Where() string {
	if u := s.databaseURL(); u != "" {
		return journal.RedactURL(u)
	}
	return s.namedStateDir()
}

// UsesDatabase reports whether runs and locks are kept in PostgreSQL.
func (s *Session) UsesDatabase() bool { return s.databaseURL() != "" }

// openStore is the store of runs: the database the state names (opened
// once per session), or the state directory localDir. where names it for
// messages and printed commands (a directory, or the URL without its
// password). Plugin files, approvals and the state key stay in localDir
// either way.
func (s *Session) openStore(localDir string) (st store, where string, err error) {
	if s.opts.DB != nil {
		return s.opts.DB, s.opts.DB.Where(), nil
	}
	u := s.databaseURL()
	if u == "" {
		return journal.NewLocal(localDir), localDir, nil
	}
	if s.db == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var opts []journal.PGOption
		if v := s.opts.Getenv(LeaseEnv); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return nil, "", fmt.Errorf("%s=%q: want a duration of at least 1s, like 30s", LeaseEnv, v)
			}
			opts = append(opts, journal.WithLease(d))
		}
		db, err := journal.OpenPostgres(ctx, u, opts...)
		if err != nil {
			return nil, "", err
		}
		s.db = db
	}
	return s.db, s.db.Where(), nil
}

// databaseFlag is what a printed command needs to find the database:
// nothing when RUNBOOK_STATE names it, else " -state URL" (without the
// password, which comes from PGPASSWORD or ~/.pgpass).
func (s *Session) databaseFlag(where string) string {
	if env := s.opts.Getenv(StateEnv); journal.IsPostgresURL(env) && journal.RedactURL(env) == where && s.opts.StateDir == "" {
		return ""
	}
	return " -state " + journal.ShellWord(where)
}

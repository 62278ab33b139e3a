// Package session is the application layer every front end calls (the CLI
// today; a worker or a web server later): it opens a runbook and its plugin
// host, checks it, resolves its variables, plans it, and applies, resumes or
// rolls back runs with their locks, journal and run metadata. It never
// prints: it returns values and typed errors, and emits events to the sink
// it is given. Exit codes and rendering belong to the caller.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/oklog/ulid/v2"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/pluginhost"
)

// DefaultStateDir is where runs are journaled when neither the caller nor a
// runbook's location says otherwise.
const DefaultStateDir = ".runbook"

// Options configure a session.
type Options struct {
	// StateDir is where runs are journaled. Empty: RUNBOOK_STATE_DIR, else
	// the nearest `.runbook` directory walking up from the runbook's
	// directory (Open, Apply) or from the working directory (the calls that
	// name a run), else `.runbook` there (see FindStateDir).
	StateDir string
	// State selects where runs and locks are kept (-state): a postgres://
	// URL, or a state directory (as StateDir). Empty: RUNBOOK_STATE,
	// unless StateDir is set. With a database, StateDir (or the directory
	// found as above) still holds what stays on the machine: plugins,
	// approvals.
	State string
	// DB, when set, is an open PostgreSQL store used instead of State (a
	// worker shares one among the sessions of its jobs); Close leaves it
	// open.
	DB *journal.PGStore
	// Parallelism caps how many steps run at once (default 10).
	Parallelism int
	// Sink receives the run's events (nil: discarded).
	Sink event.Sink
	// Mask is the masker the session teaches every sensitive value it
	// sees; give the views the same one (nil: a new one, see Mask).
	Mask *mask.Masker
	// Stderr receives the plugins' stderr, masked (nil: discarded).
	Stderr io.Writer
	// Getenv reads the environment (nil: os.Getenv): RUNBOOK_STATE_KEY,
	// RUNBOOK_STATE_KEY_FILE, RUNBOOK_STATE_DIR, RUNBOOK_SELF_EXE, and where the
	// user's state key file is (XDG_CONFIG_HOME, HOME; see DefaultKeyFile).
	Getenv func(string) string
	// Key, when set, is the state key (LoadKey) used instead of the one
	// the environment names: sessions sharing it do not derive it again.
	Key *Key
	// Hosts, when set, lends the plugin hosts of Open (plugin processes
	// started) and takes them back at Runbook.Close instead of stopping
	// them: a worker's runs of one runbook share them, one run at a time.
	Hosts *HostPool
	// RunID, when set, is the id Apply gives its run (journal.NewID's
	// form), fixed by the caller before the run exists: a worker records
	// it first, so that an attempt that dies before the run is created
	// leaves an id the next attempt applies again (taking over the dead
	// attempt's lock) and one that dies after leaves a run it resumes.
	// Apply fails when a run with that id exists.
	RunID string
	// Builtins are the plugins compiled into this binary (the CLI passes
	// plugins/builtin's registry; the engine imports no plugin).
	Builtins pluginhost.Builtins
	// Command is the command line, journaled (masked) with the run.
	Command string
	// OnRun, when set, is told the id of the run an Apply, Resume or
	// Rollback works on, before any step starts (for an interrupt hint).
	OnRun func(runID string, cmds Commands)
	// Finish, when set, journals the record that ends a run (its end
	// state; an interrupted run journals its own): Apply, Resume and
	// Rollback make the rest of the journal durable, then give Finish the
	// outcome and that record, before releasing the run's locks. A worker
	// appends it with PGStore.AppendTx in the transaction that completes
	// the run's job, so that both are committed or neither. When Finish
	// fails, the run stays unfinished (resumable, its lock kept) and the
	// call returns a *run.JournalError.
	Finish func(ctx context.Context, out *Outcome, final *journal.Record) error
}

// Session is one front end's use of the engine. It is not safe for
// concurrent use: a CLI command, a worker's job or a web request owns one.
type Session struct {
	opts   Options
	mask   *mask.Masker
	key    keyState     // the state key; see key.go
	stderr *mask.Writer // the plugins' stderr, masked with mask
	sink   event.Sink
	db     *journal.PGStore // the database State names, once opened
}

// New returns a session. It fails only when the state key the
// environment names cannot be read (or is empty).
func New(opts Options) (*Session, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	var key keyState
	if opts.Key != nil {
		key = opts.Key.ks // a copy: EnsureKey changes the session's own
	} else {
		var err error
		if key, err = loadKey(opts.Getenv); err != nil {
			return nil, err
		}
	}
	s := &Session{opts: opts, mask: opts.Mask, key: key, sink: opts.Sink}
	if s.mask == nil {
		s.mask = mask.New()
	}
	if s.sink == nil {
		s.sink = event.Discard
	}
	s.stderr = s.mask.Writer(opts.Stderr)
	// A database URL's password is a secret: nothing the session prints
	// or journals shows it.
	if u, err := url.Parse(s.databaseURL()); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s.mask.Add(pw)
		}
	}
	return s, nil
}

// Mask is the session's masker: it knows every sensitive value the session
// has seen. Views given to the session should mask with it.
func (s *Session) Mask() *mask.Masker { return s.mask }

// Close flushes the plugins' masked stderr and closes the database the
// session opened.
func (s *Session) Close() {
	s.stderr.Flush()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
}

// DiagError reports mistakes in a runbook or its variables: the caller
// prints Diags against Config (file, line and a source snippet).
type DiagError struct {
	Config *lang.Config
	Diags  hcl.Diagnostics
	// What failed, for callers that print no diagnostics.
	What string
}

// diagError is a DiagError whose messages are masked: a function error
// quotes its arguments ("read canary-pw: no such file"), and the values
// of sensitive variables are known to the masker once resolved.
func (s *Session) diagError(cfg *lang.Config, diags hcl.Diagnostics, what string) *DiagError {
	return &DiagError{Config: cfg, Diags: s.maskDiags(diags), What: what}
}

// maskDiags returns diags with every known secret masked in their summary
// and detail (copies; diags is left alone).
func (s *Session) maskDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	if s.mask.Empty() {
		return diags
	}
	out := make(hcl.Diagnostics, len(diags))
	for i, d := range diags {
		c := *d
		c.Summary, c.Detail = s.mask.Mask(d.Summary), s.mask.Mask(d.Detail)
		out[i] = &c
	}
	return out
}

func (e *DiagError) Error() string {
	if e.What != "" {
		return e.What
	}
	return e.Diags.Error()
}

// ErrCancelled is returned by Apply and Rollback when the confirmation was
// refused.
var ErrCancelled = errors.New("cancelled: nothing was done")

// Commands are the exact command lines that continue a run.
type Commands struct {
	Resume, Rollback string
	// StateFlag is " -state-dir DIR" when the commands need it, else "".
	StateFlag string
}

// commands are the commands that continue runID of stateDir, with the
// -state-dir flag they need to work when pasted in the working directory.
func (s *Session) commands(stateDir, runID string) Commands {
	dir := s.stateFlag(stateDir)
	return Commands{Resume: "runbook resume" + dir + " " + runID, Rollback: "runbook rollback" + dir + " " + runID,
		StateFlag: dir}
}

// Holder describes this process as a lock holder and a run's author.
func Holder() journal.Holder {
	h := journal.Holder{PID: os.Getpid(), Since: time.Now().UTC()}
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	h.Host, _ = os.Hostname()
	return h
}

func (s *Session) emit(ev event.Event) {
	ev.V = event.Version
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	s.sink.Emit(ev)
}

// newRunID is the id of a new run: Options.RunID, or a new one.
func (s *Session) newRunID() (string, error) {
	id := s.opts.RunID
	if id == "" {
		return journal.NewID(), nil
	}
	if u, err := ulid.ParseStrict(id); err != nil || u.String() != id {
		return "", fmt.Errorf("run id %q: not a run id (%s)", id, journal.NewID())
	}
	return id, nil
}

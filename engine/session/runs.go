package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
)

// Outcome is how an Apply, Resume or Rollback ended.
type Outcome struct {
	RunID   string
	Result  *run.Result
	Journal string   // where the run is journaled
	Cmds    Commands // how to continue it
	// AlreadyRolledBack: Rollback found nothing to do.
	AlreadyRolledBack bool
	// Recovery, for a rollback_failed run, says which undos failed, why,
	// and how to go on.
	Recovery *Recovery
}

// held are the locks of one run: its lock key (if any) and the run itself
// (one process per run). release gives them back once.
type held struct {
	key, run journal.Lock
}

// release gives the locks back. finished=false keeps the key attached to
// the unfinished run, so that only resuming or rolling it back takes it.
func (h *held) release(finished bool) {
	if h.key != nil {
		h.key.Release(finished)
		h.key = nil
	}
	if h.run != nil {
		h.run.Release(true)
		h.run = nil
	}
}

// lockRun makes sure no other process works on run id at the same time.
func lockRun(store journal.Store, id string, h *held) error {
	l, err := store.Lock("run:"+id, id, Holder())
	if err != nil {
		var le *journal.LockedError
		if errors.As(err, &le) && le.Live {
			if le.Lease > 0 {
				return fmt.Errorf("run %s is being worked on by another process: %s (if that process was killed, the run can be resumed %s after its last heartbeat)", id, le.Holder, le.Lease)
			}
			return fmt.Errorf("run %s is being worked on by another process: %s", id, le.Holder)
		}
		return err
	}
	h.run = l
	return nil
}

// Apply starts a new run of the runbook. confirm, when set, is shown the
// plan first and must return true for the run to start (false gives
// ErrCancelled). Step failures are in the outcome; the error is for what
// prevented or broke the run (locks, the journal, plugins that cannot
// start).
func (r *Runbook) Apply(ctx context.Context, confirm func(*lang.Plan) (bool, error)) (*Outcome, error) {
	s := r.s
	runID, err := s.newRunID()
	if err != nil {
		return nil, err
	}
	scope := r.scope(runID)
	lockKey, d := scope.Lock()
	if d.HasErrors() {
		return nil, s.diagError(r.Config, d, "the lock key cannot be evaluated")
	}
	if confirm != nil {
		p, err := r.Plan(ctx)
		if err != nil {
			return nil, err
		}
		ok, err := confirm(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrCancelled
		}
	}
	store, where, err := s.openStore(r.StateDir)
	if err != nil {
		return nil, err
	}
	var h held
	finished := false
	defer func() { h.release(finished) }()
	if lockKey != "" {
		l, err := store.Lock(lockKey, runID, Holder())
		if err != nil {
			return nil, s.lockErr(err, where)
		}
		h.key = l
	}
	if err := lockRun(store, runID, &h); err != nil {
		return nil, s.lockErr(err, where)
	}
	if s.opts.RunID != "" {
		// A fixed id names a new run: never journal over an existing one.
		if _, err := store.Load(runID); err == nil {
			return nil, fmt.Errorf("run %s already exists in %s: resume it", runID, where)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if _, err := s.EnsureKey(); err != nil {
		return nil, err
	}
	m := r.meta(runID, lockKey)
	j, err := store.Create(m)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	defer j.Close()
	out, err := s.execute(ctx, store, where, j, r.Host, scope, nil, "", s.key.sealer.ForRun(m), false)
	if err == nil {
		finished = journal.Finished(out.Result.State)
	}
	return out, err
}

func (r *Runbook) scope(runID string) *lang.Scope {
	return &lang.Scope{Config: r.Config, Vars: r.Vars, RunID: runID, Schemas: Schemas{r.Host}}
}

// execute runs (or resumes) a run whose journal is open, announcing it
// and its end on the sink. message names what runs (the runbook, or
// "rollback" with rollback set). where names the store (see openStore).
// sealer is the state key bound to the run (nil: secrets are not stored);
// force is run.Options.Force.
func (s *Session) execute(ctx context.Context, store store, where string, j journal.Journal, host run.Providers, scope *lang.Scope, resume *journal.State, mode string, sealer *journal.Sealer, force bool) (*Outcome, error) {
	runID := scope.RunID
	out := &Outcome{RunID: runID, Journal: store.Location(runID), Cmds: s.commands(where, runID)}
	if s.opts.OnRun != nil {
		s.opts.OnRun(runID, out.Cmds)
	}
	name := mode
	if name == "" && scope.Config.Runbook != nil {
		name = scope.Config.Runbook.Name
	}
	s.emit(event.Event{Type: event.RunStarted, RunID: runID, Message: name, Fields: map[string]string{"journal": out.Journal}})
	opts := run.Options{RunID: runID, Parallelism: s.opts.Parallelism, Providers: host, Journal: j,
		Sealer: sealer, Sink: s.sink, Mask: s.mask, Resume: resume, Force: force, KeepFinal: s.opts.Finish != nil}
	var err error
	if mode == "rollback" {
		out.Result, err = run.Rollback(ctx, run.FromConfig(scope), opts, resume)
	} else {
		out.Result, err = run.Apply(ctx, run.FromConfig(scope), opts)
	}
	if err != nil {
		// A *run.JournalError leaves the run running with its lock held
		// (the deferred release keeps the key); a *run.UnknownOutcomeError
		// journaled nothing. Both say what to do; the caller masks them.
		return nil, err
	}
	if final := out.Result.Final; final != nil {
		// The journal is closed (what it queued made durable) before
		// Finish appends the last record elsewhere.
		if err := j.Close(); err != nil {
			return nil, &run.JournalError{Err: err}
		}
		if err := s.opts.Finish(ctx, out, final); err != nil {
			return nil, &run.JournalError{Err: fmt.Errorf("%s %s: %w", final.Type, final.State, err)}
		}
		out.Result.Final = nil
	}
	if out.Result.State == journal.RunRollbackFailed {
		out.Recovery = s.recovery(store, where, runID)
	}
	s.emitFinished(out)
	return out, nil
}

// emitFinished emits run_finished: the state, the outputs (rendered,
// sensitive ones hidden) and how to continue.
func (s *Session) emitFinished(out *Outcome) {
	res := out.Result
	f := map[string]string{"journal": out.Journal}
	if c := out.Continue(); c.Resume != "" {
		f["resume"] = c.Resume
	}
	if c := out.Continue(); c.Rollback != "" {
		f["rollback"] = c.Rollback
	}
	if r := out.Recovery; r != nil {
		if r.Skip != "" {
			f["skip"] = r.Skip
		}
		if r.Unlock != "" {
			f["unlock"] = r.Unlock
		}
	}
	ev := event.Event{Type: event.RunFinished, RunID: out.RunID, State: res.State, DurationMS: res.Duration.Milliseconds(), Fields: f}
	if res.Err != nil {
		ev.Error = s.mask.Mask(res.Err.Error())
	}
	if len(res.Outputs) > 0 {
		ev.Outputs = map[string]any{}
		for k, v := range res.Outputs {
			ev.Outputs[k] = run.RenderValue(v)
		}
	}
	s.emit(ev)
}

// Continue is what can be done with the run next: resume it (unfinished),
// roll it back (anything not rolled back), or neither.
func (o *Outcome) Continue() Commands {
	if o.Result.State == journal.RunRunning {
		return o.Cmds
	}
	return next(o.Result.State, o.Cmds)
}

// meta describes a new run for the journal: who, where, the runbook's
// files and git commit, the plugins' versions and checksums, the state
// key's fingerprint, and the variables (sensitive ones sealed or left out).
func (r *Runbook) meta(runID, lockKey string) *journal.Meta {
	s, cfg := r.s, r.Config
	h := Holder()
	m := &journal.Meta{ID: runID, User: h.User, Host: h.Host, PID: h.PID, Started: time.Now().UTC(), Lock: lockKey,
		Parallelism: s.opts.Parallelism, Command: redactVarArgs(s.mask.Mask(s.opts.Command), cfg)}
	if cfg.Runbook != nil {
		m.Runbook = cfg.Runbook.Name
	}
	m.Dir, _ = filepath.Abs(RunbookDir(cfg))
	names := make([]string, 0, len(cfg.Sources))
	for n := range cfg.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(cfg.Sources[n])
		abs, err := filepath.Abs(n)
		if err != nil {
			abs = n
		}
		m.Files = append(m.Files, journal.FileHash{Path: abs, SHA256: hex.EncodeToString(sum[:])})
	}
	m.Git = r.git()
	for _, p := range UsedPlugins(cfg) {
		v, sum := r.Host.Info(p)
		m.Plugins = append(m.Plugins, journal.PluginInfo{Name: p, Version: v, SHA256: sum})
	}
	m.Key = s.key.sealer.Fingerprint()
	sealer := s.key.sealer.ForRun(m)
	m.Vars = map[string]*journal.Value{}
	for k, v := range r.Vars {
		if jv, err := journal.EncodeValue(markURLPasswords(v), sealer.Bind("var", k)); err == nil {
			m.Vars[k] = jv
		}
	}
	return m
}

// Run reads one run (an id or a unique prefix of one), interrupted when
// its process died (see Runs).
func (s *Session) Run(id string) (*RunInfo, error) {
	store, where, err := s.openStore(s.namedStateDir())
	if err != nil {
		return nil, err
	}
	id, err = store.Resolve(id)
	if err != nil {
		return nil, err
	}
	st, err := store.Load(id)
	if err != nil {
		return nil, err
	}
	return s.runInfo(store, where, st), nil
}

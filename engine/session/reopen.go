package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
)

// reopened is a journaled run with its runbook loaded again, its locks
// held and its journal open for appending.
type reopened struct {
	store store
	where string // names store (see openStore)
	state *journal.State
	j     journal.Journal
	rb    *Runbook
	locks held
	// sealer reads (and seals) the run's secrets: nil when this session's
	// key is not the one the run was sealed with.
	sealer *journal.Sealer
	// picked: no run was named; latest chose it (here: among the runs of
	// the runbook in the working directory).
	picked, here bool
}

func (o *reopened) close(finished bool) {
	if o.j != nil {
		o.j.Close()
	}
	if o.rb != nil {
		o.rb.Close()
	}
	o.locks.release(finished)
}

// reopen resolves id (or, when id is "", the run latest picks), takes its
// locks, reopens its journal and loads its runbook and
// variables: the journaled values first, then what was not stored
// (sensitive values without a key) from vars. On error nothing stays held.
func (s *Session) reopen(id string, vars lang.VarSources, latest func(store, string) (string, bool, error)) (_ *reopened, err error) {
	dir := s.namedStateDir()
	o := &reopened{}
	if o.store, o.where, err = s.openStore(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			o.close(false)
		}
	}()
	if id == "" {
		id, o.here, err = latest(o.store, o.where)
		o.picked = true
	} else {
		id, err = o.store.Resolve(id)
	}
	if err != nil {
		return nil, err
	}
	if err := lockRun(o.store, id, &o.locks); err != nil {
		return nil, s.lockErr(err, o.where)
	}
	st, err := o.store.Load(id)
	if err != nil {
		return nil, err
	}
	if st.Meta.Lock != "" {
		if o.locks.key, err = o.store.Lock(st.Meta.Lock, id, Holder()); err != nil {
			return nil, s.lockErr(err, o.where)
		}
	}
	if o.j, o.state, err = o.store.Open(id); err != nil {
		return nil, err
	}
	if o.state.Warning != "" {
		s.emit(event.Event{Type: event.Warning, RunID: id, Message: o.state.Warning})
	}
	paths, err := s.runbookFiles(id, o.state.Meta)
	if err != nil {
		return nil, err
	}
	o.sealer = s.SealerFor(o.state.Meta)
	vars.Args = append(journaledVars(o.state.Meta, o.sealer), vars.Args...)
	if o.rb, err = s.openAt(vars, dir, paths...); err != nil {
		return nil, err
	}
	return o, nil
}

// openAt is Open with the runbook's state directory given.
func (s *Session) openAt(vars lang.VarSources, stateDir string, paths ...string) (*Runbook, error) {
	saved := s.opts.StateDir
	s.opts.StateDir = stateDir
	defer func() { s.opts.StateDir = saved }()
	r, err := s.Open(vars, paths...)
	var de *DiagError
	if errors.As(err, &de) {
		de.What = "cannot load the runbook of this run"
	}
	return r, err
}

// runbookFiles are the runbook files a run was made from; a file that
// changed since is worth a warning.
func (s *Session) runbookFiles(id string, m *journal.Meta) ([]string, error) {
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
		if b, err := os.ReadFile(f.Path); err == nil {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != f.SHA256 {
				s.emit(event.Event{Type: event.Warning, RunID: id, Message: f.Path + " changed since the run started"})
			}
		}
	}
	if len(paths) == 0 {
		return nil, errors.New("the journal names no runbook file")
	}
	return paths, nil
}

// journaledVars are the run's journaled variable values as -var
// arguments; sensitive values that were not stored are left out, so that
// they come from -var, the environment or a prompt.
func journaledVars(m *journal.Meta, sealer *journal.Sealer) []string {
	var args []string
	for name, jv := range m.Vars {
		v, complete, err := jv.Decode(sealer.Bind("var", name))
		if err != nil || !complete {
			continue
		}
		args = append(args, name+"="+varArg(v))
	}
	return args
}

// varArg writes a value as a -var argument: raw for strings, HCL otherwise.
func varArg(v cty.Value) string {
	v, _ = v.UnmarkDeep()
	if v.Type() == cty.String && !v.IsNull() {
		return v.AsString()
	}
	return string(hclwrite.TokensForValue(v).Bytes())
}

// Resume continues an interrupted run where it stopped (id "" = the latest
// unfinished run): completed steps keep their journaled outputs, a step
// that was in flight is applied again with the same idempotency key and
// its last checkpoint.
func (s *Session) Resume(ctx context.Context, id string, vars lang.VarSources) (*Outcome, error) {
	o, err := s.reopen(id, vars, func(st store, where string) (string, bool, error) {
		id, err := latestRun(st, where, true)
		return id, false, err
	})
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() { o.close(finished) }()
	runID := o.state.Meta.ID
	switch o.state.State {
	case journal.RunSucceeded, journal.RunRolledBack:
		finished = true
		return nil, fmt.Errorf("run %s is %s: nothing to resume", runID, o.state.State)
	case journal.RunRollingBack, journal.RunRollbackFailed:
		return nil, fmt.Errorf("run %s was rolling back: finish that with %s", runID, s.commands(o.where, runID).Rollback)
	}
	h := Holder()
	if err := o.j.Append(&journal.Record{Type: journal.RecRunResumed, Meta: &journal.Meta{ID: runID, User: h.User, Host: h.Host, PID: h.PID}}); err != nil {
		return nil, err
	}
	out, err := s.execute(ctx, o.store, o.where, o.j, o.rb.Host, o.rb.scope(runID), o.state, "", o.sealer, false)
	if err == nil {
		finished = journal.Finished(out.Result.State)
	}
	return out, err
}

// RollbackOptions change how Rollback undoes a run.
type RollbackOptions struct {
	// Force undoes even where a plugin finds that what a step left has
	// changed since (sdk.UndoRequest.Force); without it such an undo
	// fails with kind conflict and the rollback stops there.
	Force bool
	// Confirm, when set, is shown the undo plan before anything is undone
	// and must return true for the rollback to go on (false gives
	// ErrCancelled). It is not called for a run already rolled back.
	Confirm func(*UndoPlan) (bool, error)
	// Preview asks the plugins of rollback actions that support it what
	// each undo will do (PlannedUndo.Preview), for Confirm to show.
	Preview bool
}

// Rollback undoes a run (id "" = the latest run of the runbook in the
// working directory, or of the state directory when the working directory
// holds no runbook): every step that completed, or failed leaving undo
// state, or whose undo failed before, and is not undone yet, in reverse
// dependency order. It works on successful runs too.
func (s *Session) Rollback(ctx context.Context, id string, vars lang.VarSources, ro RollbackOptions) (*Outcome, error) {
	o, err := s.reopen(id, vars, latestRunHere)
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() { o.close(finished) }()
	runID := o.state.Meta.ID
	if o.state.State == journal.RunRolledBack {
		finished = true
		return &Outcome{RunID: runID, Journal: o.store.Location(runID), AlreadyRolledBack: true,
			Result: &run.Result{State: journal.RunRolledBack}}, nil
	}
	if ro.Confirm != nil {
		// Nothing is journaled before the answer: the lock stays with
		// the run only if it was unfinished.
		finished = journal.Finished(o.state.State)
		p, err := s.undoPlan(ctx, o, ro.Preview)
		if err != nil {
			return nil, err
		}
		p.Picked, p.Here = o.picked, o.here
		ok, err := ro.Confirm(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("rollback of run %s: %w", runID, ErrCancelled)
		}
		finished = false
	}
	out, err := s.execute(ctx, o.store, o.where, o.j, o.rb.Host, o.rb.scope(runID), o.state, "rollback", o.sealer, ro.Force)
	if err == nil {
		finished = journal.Finished(out.Result.State)
	}
	return out, err
}

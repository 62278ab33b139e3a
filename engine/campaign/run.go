package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/session"
)

// Sealer is the state key of a session bound to campaign variables (nil
// when the session has no key).
func Sealer(s *session.Session) (*journal.Sealer, error) {
	if _, err := s.EnsureKey(); err != nil {
		return nil, err
	}
	fp, _ := s.KeyInfo()
	if fp == "" {
		return nil, nil
	}
	return s.SealerFor(&journal.Meta{ID: "campaign", Key: fp}), nil
}

// busySnooze is how long a job waits when its run's lock is held by a
// live process (River rescued a job whose worker is alive but slow), or
// by a dead worker whose lease has not lapsed yet.
const busySnooze = time.Second

// execute runs target t of campaign c: resumes its run when it has one
// (an earlier attempt died), else applies the runbook (or, in a rollback
// campaign, rolls the target's run back). Events go nowhere: the journal
// and the campaign's tables say what happened.
func (w *Worker) execute(ctx context.Context, job *river.Job[RunArgs], c *campaignRow, t *target) outcome {
	opts := w.cfg.Session
	opts.Sink = event.Discard
	var s *session.Session
	committed := false
	// The run's end record is committed with the target's outcome and
	// the job's completion.
	opts.Finish = func(ctx context.Context, out *session.Outcome, final *journal.Record) error {
		o := w.outcomeOf(s, c, t, out, nil)
		if o.retry != nil {
			return o.retry
		}
		if err := w.finish(context.WithoutCancel(ctx), job, t, o, final); err != nil {
			return err
		}
		committed = true
		return nil
	}
	if c.Kind != KindRollback && t.RunID != "" {
		created := !t.fresh
		if created {
			var err error
			if created, err = w.runExists(ctx, t.RunID); err != nil {
				return outcome{retry: fmt.Errorf("find run %s: %w", t.RunID, err)}
			}
		}
		if !created {
			// An id fixed before the run: applied with it (the lock of an
			// attempt that died before creating the run is taken over).
			opts.RunID = t.RunID
		}
	}
	opts.OnRun = func(runID string, _ session.Commands) {
		if runID != t.RunID {
			t.RunID = runID
			w.setRunID(t.ID, runID)
		}
	}
	s, err := session.New(opts)
	if err != nil {
		return failed(fmt.Errorf("session: %w", err))
	}
	defer s.Close()
	sealer, err := Sealer(s)
	if err != nil {
		return failed(fmt.Errorf("state key: %w", err))
	}
	if c.Fingerprint != "" {
		if fp, _ := s.KeyInfo(); fp != c.Fingerprint {
			return outcome{retry: fmt.Errorf("the campaign's variables are sealed with the state key %s and this worker has %q: give it that key (%s)", c.Fingerprint, fp, journal.EnvStateKeyFile)}
		}
	}
	args, err := DecodeVars(t.Vars.Vars, sealer, t.Vars.Bind)
	if err != nil {
		return outcome{err: err.Error()}
	}
	vars := lang.VarSources{Args: args}
	if t.RunID != "" && opts.RunID == "" {
		if done, o := w.finished(s, c, t.RunID); done {
			return o
		}
	}
	var out *session.Outcome
	switch {
	case c.Kind == KindRollback:
		out, err = s.Rollback(ctx, t.RunID, vars, session.RollbackOptions{})
	case t.RunID != "" && opts.RunID == "":
		out, err = s.Resume(ctx, t.RunID, vars)
	default:
		out, err = w.apply(ctx, s, c, vars)
	}
	o := w.outcomeOf(s, c, t, out, err)
	o.committed = committed && err == nil
	return o
}

// apply starts the target's run. A lock key held by a run nobody runs,
// of this campaign's runbook, is this target's run whose attempt died
// before recording its id: it is resumed.
func (w *Worker) apply(ctx context.Context, s *session.Session, c *campaignRow, vars lang.VarSources) (*session.Outcome, error) {
	rb, err := s.Open(vars, c.Files...)
	if err != nil {
		return nil, err
	}
	out, err := rb.Apply(ctx, nil)
	rb.Close()
	var le *journal.LockedError
	if errors.As(err, &le) && !le.Live && le.Holder.RunID != "" {
		if ri, rerr := s.Run(le.Holder.RunID); rerr == nil && ri.State.Meta != nil && sameFiles(ri.State.Meta.Files, c.Files) {
			return s.Resume(ctx, le.Holder.RunID, vars)
		}
	}
	return out, err
}

// runExists reports whether run id is journaled in the database.
func (w *Worker) runExists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := w.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runbook.runs WHERE id = $1)`, id).Scan(&ok)
	return ok, err
}

func sameFiles(hs []journal.FileHash, files []string) bool {
	if len(hs) != len(files) {
		return false
	}
	set := map[string]bool{}
	for _, f := range files {
		set[f] = true
	}
	for _, h := range hs {
		if !set[h.Path] {
			return false
		}
	}
	return true
}

// finished reports the outcome of a run that already ended (its attempt
// died between the run's end and the job's completion).
func (w *Worker) finished(s *session.Session, c *campaignRow, runID string) (bool, outcome) {
	ri, err := s.Run(runID)
	if err != nil || ri.State == nil {
		return false, outcome{}
	}
	st := ri.State
	want := journal.RunSucceeded
	if c.Kind == KindRollback {
		if st.State != journal.RunRolledBack {
			return false, outcome{}
		}
		want = journal.RunRolledBack
	} else if !journal.Finished(st.State) {
		return false, outcome{}
	}
	o := outcome{ok: st.State == want, runID: runID, runState: st.State}
	if !o.ok {
		o.err = runStateErr(st)
	}
	return true, o
}

// outcomeOf maps a session's result to the target's outcome.
func (w *Worker) outcomeOf(s *session.Session, c *campaignRow, t *target, out *session.Outcome, err error) outcome {
	if err != nil {
		msg := s.Mask().Mask(err.Error())
		var le *journal.LockedError
		var je *run.JournalError
		switch {
		case errors.As(err, &le) && le.Live, strings.Contains(err.Error(), "is being worked on by another process"):
			return outcome{retry: river.JobSnooze(busySnooze), busy: true}
		case errors.As(err, &je), ctx(err), storeDown(err):
			return outcome{retry: errors.New(msg)}
		}
		return outcome{runID: t.RunID, err: msg}
	}
	res := out.Result
	if res.Interrupted || res.State == journal.RunRunning || res.State == journal.RunInterrupted || res.State == journal.RunRollingBack {
		return outcome{retry: fmt.Errorf("run %s was interrupted (%s): it is resumed", out.RunID, res.State)}
	}
	want := journal.RunSucceeded
	if c.Kind == KindRollback {
		want = journal.RunRolledBack
	}
	o := outcome{ok: res.State == want, runID: out.RunID, runState: res.State}
	if !o.ok {
		o.err = "the run ended " + res.State
		if res.Err != nil {
			o.err += ": " + s.Mask().Mask(res.Err.Error())
		}
	}
	return o
}

// failed is the outcome of err met before the run started: the job is
// retried when the state database was away, else the target failed.
func failed(err error) outcome {
	if storeDown(err) {
		return outcome{retry: err}
	}
	return outcome{err: err.Error()}
}

// storeDown tells whether err is the state database going away or
// refusing for a while (a restart, a failover, too many connections)
// rather than the run's own failure: the job is then retried and the run
// resumed from its journal, as after a worker's death. Plugins' errors
// reach the worker as text, so only the state store's carry these types.
func storeDown(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "57"),       // operator intervention: shutdown, crash, cannot connect now
			strings.HasPrefix(pe.Code, "53"),       // insufficient resources: too many connections
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || errors.Is(err, io.ErrUnexpectedEOF)
}

func ctx(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// rescue are the parameters of River's JobRescueMany for jobs made
// available at once.
type rescue struct {
	riverdriver.JobRescueManyParams
	now time.Time
}

// horizon is the latest attempt time a rescued job may have: a job
// another sweeper rescued meanwhile, and a worker took again since, is
// left alone.
func riverdriverRescue(now, horizon time.Time) *rescue {
	return &rescue{JobRescueManyParams: riverdriver.JobRescueManyParams{StuckHorizon: horizon}, now: now}
}

func (r *rescue) add(id int64, attempt int, scheduled time.Time, why string) {
	b, _ := jsonMarshal(map[string]any{"at": r.now, "attempt": attempt, "error": why, "trace": ""})
	r.ID = append(r.ID, id)
	r.Error = append(r.Error, b)
	r.FinalizedAt = append(r.FinalizedAt, nil)
	r.ScheduledAt = append(r.ScheduledAt, scheduled)
	r.State = append(r.State, "available")
}

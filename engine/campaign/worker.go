package campaign

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
)

// Defaults of WorkerConfig.
const (
	DefaultLease       = 10 * time.Second
	DefaultRescueAfter = 10 * time.Minute
)

// WorkerConfig configures a worker process.
type WorkerConfig struct {
	Pool *pgxpool.Pool
	// Capacity is how many runs this worker runs at once (default 4).
	Capacity int
	// Session is the template of each run's session (the database store
	// its runs are journaled in, Options.DB, shared; builtins,
	// environment). Sink and OnRun are set per run. The store's lock lease
	// should be Lease: a dead worker's runs are resumed once both lapsed.
	Session session.Options
	// Lease is how long a worker counts as alive after its last heartbeat
	// (default DefaultLease). A dead worker's running jobs are rescued
	// by the others as soon as its lease expires, and the runs resumed
	// from their journals: Lease bounds the time from a worker's death to
	// the resumption of its runs (plus one sweep, Lease/4).
	Lease time.Duration
	// RescueAfter is River's RescueStuckJobsAfter: a job running longer is
	// retried by River's rescuer whatever its worker (default
	// DefaultRescueAfter). A live worker's run is never run twice: the
	// new attempt finds the run's lock held by a live process and waits.
	RescueAfter time.Duration
	Logger      *slog.Logger
}

// Worker runs campaign jobs with a River client.
type Worker struct {
	cfg    WorkerConfig
	id     string
	client *river.Client[pgx.Tx]
	store  *Store
	log    *slog.Logger
	stop   context.CancelFunc
	done   chan struct{}
	// ownHosts: the worker made cfg.Session.Hosts and closes it on Stop.
	ownHosts bool
	// finishFault, in tests, is called in the transaction that ends a
	// target, after its run's end record was appended; an error rolls the
	// transaction back.
	finishFault func(ctx context.Context, tx pgx.Tx, t *target) error
}

// NewWorker sets up a worker; Start starts it.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 4
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = DefaultRescueAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.Session.DB == nil {
		return nil, errors.New("worker: Session.DB (the database store its runs are journaled in) is not set")
	}
	if cfg.Session.Key == nil {
		// The state key is derived once for every run (a passphrase's
		// argon2id takes about a second). Unreadable: each run's session
		// reports why, as before.
		if k, err := session.LoadKey(cfg.Session.Getenv); err == nil {
			cfg.Session.Key = k
		}
	}
	ownHosts := cfg.Session.Hosts == nil
	if ownHosts {
		// The plugin processes of a runbook's runs are started once and
		// reused by the next runs (one run at a time each).
		cfg.Session.Hosts = session.NewHostPool()
	}
	host, _ := os.Hostname()
	w := &Worker{ownHosts: ownHosts, cfg: cfg, id: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.ToLower(ulid.Make().String()[20:])), log: cfg.Logger}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &runWorker{w: w}); err != nil {
		return nil, err
	}
	c, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		ID:                   w.id,
		Queues:               map[string]river.QueueConfig{Queue: {MaxWorkers: cfg.Capacity}},
		Workers:              workers,
		JobTimeout:           -1, // a run takes what it takes; the lease covers dead workers
		RescueStuckJobsAfter: cfg.RescueAfter,
		RetryPolicy:          retryPolicy{},
		FetchCooldown:        20 * time.Millisecond,
		FetchPollInterval:    500 * time.Millisecond,
		Logger:               quietLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	w.client = c
	w.store = &Store{pool: cfg.Pool, client: c}
	return w, nil
}

// ID names the worker (its River client id).
func (w *Worker) ID() string { return w.id }

// Start registers the worker, starts its River client, and its heartbeat
// and sweep of dead workers' jobs.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.heartbeat(ctx); err != nil {
		return fmt.Errorf("register worker: %w", err)
	}
	if err := w.client.Start(ctx); err != nil {
		return fmt.Errorf("start river client: %w", err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.stop, w.done = cancel, make(chan struct{})
	go w.loop(hctx)
	return nil
}

// Stop waits for the running jobs to finish (graceful: no new job is
// taken); when ctx ends first, their runs are interrupted (they stay
// resumable, and another worker resumes them).
func (w *Worker) Stop(ctx context.Context) error {
	err := w.client.Stop(ctx)
	if err != nil {
		hard, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = w.client.StopAndCancel(hard)
	}
	if w.stop != nil {
		w.stop()
		<-w.done
	}
	bg, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = w.cfg.Pool.Exec(bg, `DELETE FROM runbook.workers WHERE id = $1`, w.id)
	if w.ownHosts {
		w.cfg.Session.Hosts.Close()
	}
	return err
}

// loop heartbeats and sweeps every Lease/4.
func (w *Worker) loop(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.heartbeat(ctx); err != nil {
			w.log.Warn("heartbeat", "error", err)
			continue
		}
		if n, err := w.sweep(ctx); err != nil {
			w.log.Warn("sweep", "error", err)
		} else if n > 0 {
			w.log.Info("rescued the jobs of dead workers", "jobs", n)
		}
	}
}

func (w *Worker) heartbeat(ctx context.Context) error {
	host, _ := os.Hostname()
	_, err := w.cfg.Pool.Exec(ctx, `INSERT INTO runbook.workers (id, host, pid) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET heartbeat = now()`, w.id, host, os.Getpid())
	return err
}

// sweep rescues the running jobs of dead workers (no heartbeat within the
// lease) with River's own rescue operation, making them available at
// once: River's rescuer runs every 30 s and retries by age, not by
// worker liveness, which would make a killed worker's runs wait up to
// RescueAfter + 30 s.
func (w *Worker) sweep(ctx context.Context) (int, error) {
	lease := w.cfg.Lease.Seconds()
	rows, err := w.cfg.Pool.Query(ctx, `SELECT j.id, j.attempt, j.attempted_by[cardinality(j.attempted_by)], j.scheduled_at FROM river_job j
		WHERE j.state = 'running' AND j.kind = $1 AND j.attempted_at < now() - make_interval(secs => $2)
		AND NOT EXISTS (SELECT 1 FROM runbook.workers w WHERE w.id = j.attempted_by[cardinality(j.attempted_by)]
			AND w.heartbeat > now() - make_interval(secs => $2))`, JobKind, lease)
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	p := riverdriverRescue(now, now.Add(-w.cfg.Lease))
	for rows.Next() {
		var id int64
		var attempt int
		var by *string
		var scheduled time.Time
		if err := rows.Scan(&id, &attempt, &by, &scheduled); err != nil {
			rows.Close()
			return 0, err
		}
		who := "an unknown worker"
		if by != nil {
			who = "worker " + *by
		}
		// Its first place in the queue: a run in progress goes before the
		// targets not started yet, not behind them.
		p.add(id, attempt, scheduled, who+" died (no heartbeat within the lease)")
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(p.ID) == 0 {
		return 0, err
	}
	if _, err := riverpgxv5.New(w.cfg.Pool).GetExecutor().JobRescueMany(ctx, &p.JobRescueManyParams); err != nil {
		return 0, err
	}
	_, _ = w.cfg.Pool.Exec(ctx, `DELETE FROM runbook.workers WHERE heartbeat < now() - interval '1 hour'`)
	return len(p.ID), nil
}

// retryPolicy retries a job whose run could not go on (its worker died,
// the database went away) soon: a second, growing to ten.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(min(job.Attempt, 10)) * time.Second)
}

// runWorker is the River worker of campaign runs.
type runWorker struct {
	river.WorkerDefaults[RunArgs]
	w *Worker
}

// target is a target row as a worker needs it.
type target struct {
	ID, Campaign   int64
	Line           int
	LockKey, State string
	RunID          string
	Vars           varsJSON
	Canary         bool
	// fresh: RunID was fixed by this attempt; no run has it yet.
	fresh bool
}

func (rw *runWorker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	w := rw.w
	c, t, run, err := w.admit(ctx, job)
	if err != nil || !run {
		return err
	}
	// A run whose lock a dead worker held is taken over once that
	// worker's lease lapses: wait for it here rather than snoozing, since
	// a snoozed job waits for River's scheduler (on its leader, which may
	// be the dead worker) to become available again.
	deadline := time.Now().Add(2*w.cfg.Lease + 5*time.Second)
	res := w.execute(ctx, job, c, t)
	for res.busy && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(busySnooze):
		}
		res = w.execute(ctx, job, c, t)
	}
	if res.retry != nil || res.committed {
		return res.retry
	}
	return w.finish(context.WithoutCancel(ctx), job, t, res, nil)
}

// admit decides whether the job's target runs: a target already finished
// (its previous attempt died between its run's end and the job's
// completion), cancelled, or whose campaign is paused or stopped, does not:
// the job completes at once (a paused target goes back to pending, for
// Resume to enqueue it again). A target that was running (its worker
// died) runs again: its run is resumed.
func (w *Worker) admit(ctx context.Context, job *river.Job[RunArgs]) (c *campaignRow, t *target, run bool, err error) {
	err = pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		c, err = scanCampaign(tx.QueryRow(ctx, `SELECT `+campaignCols+` FROM runbook.campaigns WHERE id = $1 FOR SHARE`, job.Args.Campaign))
		if err != nil {
			return fmt.Errorf("campaign %d: %w", job.Args.Campaign, err)
		}
		t = &target{}
		err = tx.QueryRow(ctx, `SELECT id, campaign, line, lock_key, state, run_id, vars, canary FROM runbook.targets WHERE id = $1 FOR UPDATE`,
			job.Args.Target).Scan(&t.ID, &t.Campaign, &t.Line, &t.LockKey, &t.State, &t.RunID, &t.Vars, &t.Canary)
		if err != nil {
			return fmt.Errorf("target %d: %w", job.Args.Target, err)
		}
		next := ""
		switch {
		case t.State == TargetRunning:
			run = true // resumed whatever the campaign's state: running runs finish
		case t.State != TargetQueued:
			// finished, cancelled, or parked by a pause
		case c.State == StateRunning || c.State == StateCanary && t.Canary:
			run, next = true, TargetRunning
		case c.State == StateCancelled:
			next = TargetCancelled
		default:
			next = TargetPending
		}
		if next != "" {
			if _, err := tx.Exec(ctx, `UPDATE runbook.targets SET state = $2, worker = $3, attempts = attempts + $4::int,
				started_at = CASE WHEN $4::int = 1 THEN now() ELSE started_at END,
				finished_at = CASE WHEN $2 = 'cancelled' THEN now() END WHERE id = $1`,
				t.ID, next, w.id, b2i(next == TargetRunning)); err != nil {
				return err
			}
		} else if run {
			if _, err := tx.Exec(ctx, `UPDATE runbook.targets SET worker = $2, attempts = attempts + 1 WHERE id = $1`, t.ID, w.id); err != nil {
				return err
			}
		}
		if !run {
			_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		}
		if t.RunID == "" && c.Kind != KindRollback {
			// The run's id is recorded before the run exists: an attempt
			// that dies at any point leaves the next one the run to
			// resume, or the id to apply again.
			t.RunID, t.fresh = journal.NewID(), true
			if _, err := tx.Exec(ctx, `UPDATE runbook.targets SET run_id = $2 WHERE id = $1`, t.ID, t.RunID); err != nil {
				return err
			}
		}
		return nil
	})
	return c, t, run, err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outcome is how a target's run ended, or why the job must be tried again.
type outcome struct {
	retry    error // the job is retried (or snoozed): the run is not finished
	busy     bool  // the run's lock is held by a live process (or a dead one's lease)
	ok       bool
	runID    string
	runState string
	err      string
	// committed: the run's end record, the target's outcome and the
	// job's completion are committed (finish ran within the run).
	committed bool
}

// finish appends the run's end record (final, unless nil: the run's
// journal has it, or there is no run), records the target's outcome,
// applies the campaign's controls (error budget, canary), feeds the next
// targets, and completes the job, in one transaction: all of it is
// committed, or none.
func (w *Worker) finish(ctx context.Context, job *river.Job[RunArgs], t *target, res outcome, final *journal.Record) error {
	err := w.finishTx(ctx, job, t, res, final, true)
	if err != nil && !errors.Is(err, errNotRunning) {
		return err
	}
	if err != nil {
		// River gave the job to another worker meanwhile (a rescue): record
		// the outcome; that attempt completes its job on finding it.
		return w.finishTx(ctx, job, t, res, final, false)
	}
	return nil
}

var errNotRunning = errors.New("the job is no longer running")

func (w *Worker) finishTx(ctx context.Context, job *river.Job[RunArgs], t *target, res outcome, final *journal.Record, complete bool) error {
	return pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
		// The record first: the campaign's row lock, which serializes the
		// ends of its targets, is held from lockCampaign to the commit.
		if final != nil {
			if err := w.cfg.Session.DB.AppendTx(ctx, tx, res.runID, final); err != nil {
				return err
			}
		}
		if w.finishFault != nil {
			if err := w.finishFault(ctx, tx, t); err != nil {
				return err
			}
		}
		c, err := lockCampaign(ctx, tx, t.Campaign)
		if err != nil {
			return err
		}
		state := TargetFailed
		if res.ok {
			state = TargetSucceeded
		}
		if _, err := tx.Exec(ctx, `UPDATE runbook.targets SET state = $2, run_id = CASE WHEN $3 = '' THEN run_id ELSE $3 END,
			run_state = $4, error = $5, finished_at = now() WHERE id = $1`, t.ID, state, res.runID, res.runState, res.err); err != nil {
			return err
		}
		if err := w.control(ctx, tx, c, t, res.ok); err != nil {
			return err
		}
		if err := w.store.feed(ctx, tx, c); err != nil {
			return err
		}
		if complete {
			if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
				if strings.Contains(err.Error(), "must be running") || errors.Is(err, rivertype.ErrNotFound) {
					return errNotRunning
				}
				return fmt.Errorf("complete job: %w", err)
			}
		}
		return nil
	})
}

// control applies the canary and the error budget after target t ended.
func (w *Worker) control(ctx context.Context, tx pgx.Tx, c *campaignRow, t *target, ok bool) error {
	if !ok {
		if c.State == StateCanary && t.Canary {
			return setState(ctx, tx, c, StateStopped, fmt.Sprintf("canary target at line %d (%s) failed: nothing else was started", t.Line, t.LockKey))
		}
		if c.MaxErrors > 0 && (c.State == StateRunning || c.State == StateCanary) {
			var failed int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND state = 'failed'`, c.ID).Scan(&failed); err != nil {
				return err
			}
			if failed >= c.MaxErrors {
				return setState(ctx, tx, c, StatePaused, fmt.Sprintf("error budget spent: %d runs failed (-max-errors %s)", failed, c.MaxErrorsSpec))
			}
		}
		return nil
	}
	if c.State == StateCanary {
		var waiting int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND canary AND state <> 'succeeded'`, c.ID).Scan(&waiting); err != nil {
			return err
		}
		if waiting == 0 {
			return setState(ctx, tx, c, StateRunning, "")
		}
	}
	return nil
}

// setRunID records the run a target's attempt started, as soon as it has
// an id: a later attempt resumes that run rather than starting another.
func (w *Worker) setRunID(targetID int64, runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		_, err := w.cfg.Pool.Exec(ctx, `UPDATE runbook.targets SET run_id = $2 WHERE id = $1`, targetID, runID)
		if err == nil || ctx.Err() != nil {
			return
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
}

// runStateErr is why a finished run's target failed: its first failed
// step's error.
func runStateErr(st *journal.State) string {
	for _, a := range st.Order {
		if s := st.Steps[a]; s != nil && s.Error != nil {
			return "the run ended " + st.State + ": " + a + ": " + s.Error.Message
		}
	}
	return "the run ended " + st.State
}

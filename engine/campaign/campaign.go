// Package campaign runs one runbook over many targets (a fleet: every
// instance to move, every user to migrate) on workers: each target is a
// run, queued as a River job in the PostgreSQL database that also holds the
// campaign's state. A campaign has controls: a canary (the first K targets
// run first and must succeed), an error budget (crossing it pauses the
// campaign: no new run starts, running ones finish), a concurrency cap
// across every worker, and pause, resume, cancel and rollback.
//
// Concurrency is capped by feeding, not by waiting: a campaign never has
// more jobs in the queue than it may run at once. Start enqueues the first
// max-concurrency targets (or the canary targets); each run that finishes
// enqueues the next in the transaction that completes its job, with the
// campaign's row locked. The cap thus holds across any number of workers
// with no job polling for a free slot (River's own MaxWorkers caps one
// worker process, not the fleet of them), and pausing is only a state:
// nothing more is fed, and a queued job that finds its campaign paused
// gives its target back without running it.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// Campaign states.
const (
	StateCanary    = "canary"    // the canary targets run; the others wait
	StateRunning   = "running"   // targets are fed to the workers
	StatePaused    = "paused"    // nothing new starts (error budget, or pause)
	StateStopped   = "stopped"   // a canary failed: nothing else started
	StateCancelled = "cancelled" // what had not started never will
	StateDone      = "done"      // every target finished
)

// Target states.
const (
	TargetPending   = "pending"   // not in the queue
	TargetQueued    = "queued"    // its job is in the queue
	TargetRunning   = "running"   // a worker runs (or ran, and died) it
	TargetSucceeded = "succeeded" // its run succeeded (or, in a rollback campaign, is rolled back)
	TargetFailed    = "failed"
	TargetCancelled = "cancelled"
)

// Kinds of campaign.
const (
	KindApply    = "apply"
	KindRollback = "rollback"
)

// JobKind and Queue are the River job kind and queue of campaign runs.
const (
	JobKind = "runbook_campaign_run"
	Queue   = "runbook"
)

// RunArgs are a campaign run's job arguments: unique per campaign and lock
// key while the job is not finished.
type RunArgs struct {
	Campaign int64  `json:"campaign" river:"unique"`
	Target   int64  `json:"target"`
	LockKey  string `json:"lock_key" river:"unique"`
}

// Kind implements river.JobArgs.
func (RunArgs) Kind() string { return JobKind }

// InsertOpts implements river.JobArgsWithInsertOpts. A worker's death is
// an attempt: many are allowed (a run's failure is not a job failure: the
// job completes with its target failed).
func (RunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       Queue,
		MaxAttempts: 100,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled}},
	}
}

// Budget is an error budget: N failed runs, or a percentage of the
// targets. Zero: none.
type Budget struct {
	N       int
	Percent float64
	Spec    string // as given
}

// ParseBudget reads "N" or "P%".
func ParseBudget(s string) (Budget, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Budget{}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return Budget{}, fmt.Errorf("-max-errors %q: a percentage is a number in (0, 100] followed by %%", s)
		}
		return Budget{Percent: f, Spec: s}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return Budget{}, fmt.Errorf("-max-errors %q: give a count of failed runs (N) or a percentage of the targets (P%%)", s)
	}
	return Budget{N: n, Spec: s}, nil
}

// Threshold is the number of failed runs that pauses a campaign of total
// targets (0: never): a percentage rounds up, and is at least one.
func (b Budget) Threshold(total int) int {
	if b.Percent > 0 {
		return max(1, int(math.Ceil(b.Percent*float64(total)/100-1e-9)))
	}
	return b.N
}

// Store reads and changes campaigns. Its river client only inserts jobs.
type Store struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

// NewStore returns the campaigns of the database pool is connected to.
func NewStore(pool *pgxpool.Pool) (*Store, error) {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quietLogger()})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return &Store{pool: pool, client: c}, nil
}

// Pool is the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Spec is a campaign to start.
type Spec struct {
	Name           string
	Files          []string // the runbook's files, absolute
	Targets        []Target
	MaxConcurrency int // 0: no cap
	MaxErrors      Budget
	Canary         int
	KeyFingerprint string // the state key the sensitive variables are sealed with
}

// ErrExists is returned by Start for a name already taken.
var ErrExists = errors.New("a campaign with this name exists")

// Start records the campaign and its targets and enqueues the first runs,
// all in one transaction: on error nothing is enqueued.
func (s *Store) Start(ctx context.Context, sp Spec) (*Status, error) {
	if len(sp.Targets) == 0 {
		return nil, errors.New("the targets file has no target")
	}
	if sp.Canary < 0 || sp.Canary > len(sp.Targets) {
		return nil, fmt.Errorf("-canary %d: the campaign has %d targets", sp.Canary, len(sp.Targets))
	}
	state := StateRunning
	if sp.Canary > 0 {
		state = StateCanary
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO runbook.campaigns (name, kind, files, state, max_concurrency, max_errors, max_errors_spec, canary, key_fingerprint)
			VALUES ($1, 'apply', $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING RETURNING id`,
			sp.Name, sp.Files, state, sp.MaxConcurrency, sp.MaxErrors.Threshold(len(sp.Targets)), sp.MaxErrors.Spec,
			sp.Canary, sp.KeyFingerprint).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("campaign %q: %w", sp.Name, ErrExists)
		}
		if err != nil {
			return err
		}
		if err := insertTargets(ctx, tx, id, sp.Targets, sp.Canary); err != nil {
			return err
		}
		c, err := lockCampaign(ctx, tx, id)
		if err != nil {
			return err
		}
		return s.feed(ctx, tx, c)
	})
	if err != nil {
		return nil, fmt.Errorf("start campaign %s: %w", sp.Name, err)
	}
	return s.Status(ctx, sp.Name)
}

func insertTargets(ctx context.Context, tx pgx.Tx, campaign int64, ts []Target, canary int) error {
	rows := make([][]any, len(ts))
	for i, t := range ts {
		rows[i] = []any{campaign, t.Line, t.LockKey, varsJSON{Bind: t.Bind, Vars: t.Vars}, i < canary}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"runbook", "targets"}, []string{"campaign", "line", "lock_key", "vars", "canary"}, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("record targets: %w", err)
	}
	return nil
}

// campaignRow is a campaign as its row says.
type campaignRow struct {
	ID                         int64
	Name, Kind, State, Reason  string
	Files                      []string
	MaxConcurrency, MaxErrors  int
	Canary                     int
	MaxErrorsSpec, Fingerprint string
	Created, Updated           time.Time
}

const campaignCols = `id, name, kind, state, reason, files, max_concurrency, max_errors, canary, max_errors_spec, key_fingerprint, created_at, updated_at`

func scanCampaign(r pgx.Row) (*campaignRow, error) {
	c := &campaignRow{}
	err := r.Scan(&c.ID, &c.Name, &c.Kind, &c.State, &c.Reason, &c.Files, &c.MaxConcurrency, &c.MaxErrors, &c.Canary,
		&c.MaxErrorsSpec, &c.Fingerprint, &c.Created, &c.Updated)
	return c, err
}

// lockCampaign reads campaign id, its row locked until tx ends.
func lockCampaign(ctx context.Context, tx pgx.Tx, id int64) (*campaignRow, error) {
	c, err := scanCampaign(tx.QueryRow(ctx, `SELECT `+campaignCols+` FROM runbook.campaigns WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, fmt.Errorf("campaign %d: %w", id, err)
	}
	return c, nil
}

// setState changes the campaign's state and reason.
func setState(ctx context.Context, tx pgx.Tx, c *campaignRow, state, reason string) error {
	c.State, c.Reason = state, reason
	_, err := tx.Exec(ctx, `UPDATE runbook.campaigns SET state = $2, reason = $3, updated_at = now() WHERE id = $1`, c.ID, state, reason)
	return err
}

// feed enqueues what the campaign may run now: the canary targets while
// it is in canary, every pending target while running, up to its
// concurrency cap counting what is queued or running. It ends a running
// campaign with nothing left to run. The caller holds the campaign's row.
func (s *Store) feed(ctx context.Context, tx pgx.Tx, c *campaignRow) error {
	if c.State != StateCanary && c.State != StateRunning {
		return nil
	}
	limit := int64(math.MaxInt32)
	if c.MaxConcurrency > 0 {
		var busy int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND state IN ('queued', 'running')`, c.ID).Scan(&busy); err != nil {
			return err
		}
		limit = max(0, int64(c.MaxConcurrency)-busy)
	}
	if limit > 0 {
		rows, err := tx.Query(ctx, `UPDATE runbook.targets SET state = 'queued' WHERE id IN (
				SELECT id FROM runbook.targets WHERE campaign = $1 AND state = 'pending' AND (canary OR $2)
				ORDER BY line LIMIT $3)
			RETURNING id, lock_key`, c.ID, c.State == StateRunning, limit)
		if err != nil {
			return err
		}
		var params []river.InsertManyParams
		for rows.Next() {
			a := RunArgs{Campaign: c.ID}
			if err := rows.Scan(&a.Target, &a.LockKey); err != nil {
				rows.Close()
				return err
			}
			params = append(params, river.InsertManyParams{Args: a})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(params) > 0 {
			if _, err := s.client.InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
	}
	if c.State != StateRunning {
		return nil
	}
	var left int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND state IN ('pending', 'queued', 'running')`, c.ID).Scan(&left); err != nil {
		return err
	}
	if left == 0 {
		return setState(ctx, tx, c, StateDone, "")
	}
	return nil
}

// byName runs f on campaign name with its row locked.
func (s *Store) byName(ctx context.Context, name string, f func(tx pgx.Tx, c *campaignRow) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id FROM runbook.campaigns WHERE name = $1`, name).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("no campaign %q (see `runbook campaign ls`)", name)
			}
			return err
		}
		c, err := lockCampaign(ctx, tx, id)
		if err != nil {
			return err
		}
		return f(tx, c)
	})
}

// Pause stops starting new runs; running ones finish.
func (s *Store) Pause(ctx context.Context, name string) error {
	return s.byName(ctx, name, func(tx pgx.Tx, c *campaignRow) error {
		switch c.State {
		case StateCanary, StateRunning:
			return setState(ctx, tx, c, StatePaused, "paused by hand")
		case StatePaused:
			return nil
		}
		return fmt.Errorf("campaign %s is %s: only a running campaign can be paused", name, c.State)
	})
}

// Resume goes on with a paused campaign, or with a stopped one (its canary
// failed) as if the canary had passed.
func (s *Store) Resume(ctx context.Context, name string) error {
	return s.byName(ctx, name, func(tx pgx.Tx, c *campaignRow) error {
		switch c.State {
		case StatePaused, StateStopped:
		case StateRunning, StateCanary:
			return nil
		default:
			return fmt.Errorf("campaign %s is %s: nothing to resume", name, c.State)
		}
		state := StateRunning
		if c.State == StatePaused && c.Canary > 0 {
			var waiting int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND canary AND state <> 'succeeded'`, c.ID).Scan(&waiting); err != nil {
				return err
			}
			if waiting > 0 {
				state = StateCanary
			}
		}
		if err := setState(ctx, tx, c, state, ""); err != nil {
			return err
		}
		return s.feed(ctx, tx, c)
	})
}

// Cancel ends the campaign: targets not started are cancelled; running
// runs finish.
func (s *Store) Cancel(ctx context.Context, name string) error {
	return s.byName(ctx, name, func(tx pgx.Tx, c *campaignRow) error {
		if c.State == StateDone || c.State == StateCancelled {
			return fmt.Errorf("campaign %s is %s already", name, c.State)
		}
		if _, err := tx.Exec(ctx, `UPDATE runbook.targets SET state = 'cancelled', finished_at = now() WHERE campaign = $1 AND state IN ('pending', 'queued')`, c.ID); err != nil {
			return err
		}
		return setState(ctx, tx, c, StateCancelled, "cancelled by hand")
	})
}

// Rollback starts a campaign named newName that rolls back every run of
// campaign name that started (finished or not), with the same controls
// (or those of sp, when set: MaxConcurrency, MaxErrors, Canary).
func (s *Store) Rollback(ctx context.Context, name, newName string, sp Spec) (*Status, error) {
	err := s.byName(ctx, name, func(tx pgx.Tx, c *campaignRow) error {
		if c.Kind != KindApply {
			return fmt.Errorf("campaign %s is a rollback campaign: roll back its runs with `runbook rollback`", name)
		}
		var busy int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND state IN ('queued', 'running')`, c.ID).Scan(&busy); err != nil {
			return err
		}
		if busy > 0 {
			return fmt.Errorf("campaign %s has %d runs queued or running: pause or cancel it and wait for them to finish first", name, busy)
		}
		var total int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.targets WHERE campaign = $1 AND run_id <> ''`, c.ID).Scan(&total); err != nil {
			return err
		}
		if total == 0 {
			return fmt.Errorf("campaign %s has no run to roll back", name)
		}
		conc, canary, budget := c.MaxConcurrency, 0, c.MaxErrors
		if sp.MaxConcurrency > 0 {
			conc = sp.MaxConcurrency
		}
		if sp.Canary > 0 {
			canary = min(sp.Canary, total)
		}
		if sp.MaxErrors.Spec != "" {
			budget = sp.MaxErrors.Threshold(total)
		}
		state := StateRunning
		if canary > 0 {
			state = StateCanary
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO runbook.campaigns (name, kind, parent, files, state, max_concurrency, max_errors, max_errors_spec, canary, key_fingerprint)
			VALUES ($1, 'rollback', $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING RETURNING id`,
			newName, c.ID, c.Files, state, conc, budget, cmpOr(sp.MaxErrors.Spec, c.MaxErrorsSpec), canary, c.Fingerprint).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("campaign %q: %w", newName, ErrExists)
		}
		if err != nil {
			return err
		}
		// Newest runs first is what undoing in order means for a fleet; a
		// campaign's runs are independent, so line order is kept instead.
		if _, err := tx.Exec(ctx, `INSERT INTO runbook.targets (campaign, line, lock_key, vars, canary, run_id, source)
			SELECT $1, line, lock_key, vars, row_number() OVER (ORDER BY line) <= $3, run_id, id
			FROM runbook.targets WHERE campaign = $2 AND run_id <> ''`, id, c.ID, canary); err != nil {
			return err
		}
		nc, err := lockCampaign(ctx, tx, id)
		if err != nil {
			return err
		}
		return s.feed(ctx, tx, nc)
	})
	if err != nil {
		return nil, fmt.Errorf("roll back campaign %s: %w", name, err)
	}
	return s.Status(ctx, newName)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Add records targets in campaign sp.Name, creating it (with sp's files
// and controls) when missing, and enqueues what its controls allow. A
// target whose lock key the campaign has already is skipped (a message
// delivered twice adds one target). added counts the new targets.
func (s *Store) Add(ctx context.Context, sp Spec) (added int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO runbook.campaigns (name, kind, files, state, max_concurrency, max_errors, max_errors_spec, key_fingerprint)
			VALUES ($1, 'apply', $2, 'running', $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
			sp.Name, sp.Files, sp.MaxConcurrency, sp.MaxErrors.N, sp.MaxErrors.Spec, sp.KeyFingerprint); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `SELECT id FROM runbook.campaigns WHERE name = $1`, sp.Name).Scan(&id); err != nil {
			return err
		}
		c, err := lockCampaign(ctx, tx, id)
		if err != nil {
			return err
		}
		if c.Kind != KindApply || !equalStrings(c.Files, sp.Files) {
			return fmt.Errorf("campaign %s runs %s, not %s", sp.Name, strings.Join(c.Files, ", "), strings.Join(sp.Files, ", "))
		}
		for _, t := range sp.Targets {
			tag, err := tx.Exec(ctx, `INSERT INTO runbook.targets (campaign, line, lock_key, vars)
				SELECT $1, coalesce(max(line), 0) + 1, $2, $3 FROM runbook.targets WHERE campaign = $1
				ON CONFLICT (campaign, lock_key) DO NOTHING`, id, t.LockKey, varsJSON{Bind: t.Bind, Vars: t.Vars})
			if err != nil {
				return fmt.Errorf("record target: %w", err)
			}
			added += int(tag.RowsAffected())
		}
		if c.State == StateDone && added > 0 {
			if err := setState(ctx, tx, c, StateRunning, ""); err != nil {
				return err
			}
		}
		return s.feed(ctx, tx, c)
	})
	if err != nil {
		return 0, fmt.Errorf("add to campaign %s: %w", sp.Name, err)
	}
	return added, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

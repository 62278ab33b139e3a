package campaign

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the PostgreSQL schema of the campaign tables (River's own
// tables stay where its migrator puts them: the search path).
const Schema = "runbook"

// ddl creates the campaign tables. Idempotent: every statement checks
// first, so that it can run on every start.
//
// campaigns holds one row per campaign with its controls; targets one row
// per row of the targets file: its variables (sensitive ones sealed with the
// state key, like journal records), its lock key (unique in the campaign:
// one run per lock key), and where its run is. workers is the heartbeat of
// each live worker process: a worker whose heartbeat is older than its
// lease is dead, and its running jobs are rescued at once (see sweep).
const ddl = `
CREATE SCHEMA IF NOT EXISTS runbook;
CREATE TABLE IF NOT EXISTS runbook.campaigns (
	id              bigserial PRIMARY KEY,
	name            text NOT NULL UNIQUE,
	kind            text NOT NULL DEFAULT 'apply',
	parent          bigint REFERENCES runbook.campaigns(id),
	files           text[] NOT NULL,
	state           text NOT NULL,
	reason          text NOT NULL DEFAULT '',
	max_concurrency int NOT NULL DEFAULT 0,
	max_errors      int NOT NULL DEFAULT 0,
	max_errors_spec text NOT NULL DEFAULT '',
	canary          int NOT NULL DEFAULT 0,
	key_fingerprint text NOT NULL DEFAULT '',
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS runbook.targets (
	id          bigserial PRIMARY KEY,
	campaign    bigint NOT NULL REFERENCES runbook.campaigns(id) ON DELETE CASCADE,
	line        int NOT NULL,
	lock_key    text NOT NULL,
	vars        jsonb NOT NULL,
	canary      boolean NOT NULL DEFAULT false,
	state       text NOT NULL DEFAULT 'pending',
	run_id      text NOT NULL DEFAULT '',
	run_state   text NOT NULL DEFAULT '',
	error       text NOT NULL DEFAULT '',
	worker      text NOT NULL DEFAULT '',
	attempts    int NOT NULL DEFAULT 0,
	source      bigint,
	started_at  timestamptz,
	finished_at timestamptz,
	UNIQUE (campaign, lock_key)
);
CREATE INDEX IF NOT EXISTS targets_campaign_state ON runbook.targets (campaign, state);
CREATE TABLE IF NOT EXISTS runbook.workers (
	id        text PRIMARY KEY,
	host      text NOT NULL,
	pid       int NOT NULL,
	started   timestamptz NOT NULL DEFAULT now(),
	heartbeat timestamptz NOT NULL DEFAULT now()
);
`

// migrateLock is the advisory lock journal.Migrate holds too: one
// migration at a time across processes.
const migrateLock = 0x72756e626f6f6b // "runbook"

// EnsureSchema creates the campaign tables when they are missing. The
// runbook schema and River's tables come from journal.Migrate (`runbook
// state migrate`); this only adds what campaigns keep, idempotently, so
// that workers starting together are safe.
func EnsureSchema(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("campaign tables: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('runbook.workers') IS NOT NULL`).Scan(&exists); err == nil && exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return fmt.Errorf("campaign tables: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(migrateLock))
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("campaign tables: %w", err)
	}
	return nil
}

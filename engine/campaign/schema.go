package campaign

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
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

// migrateLock serializes Migrate between processes (workers starting
// together): a session advisory lock.
const migrateLock = 0x72756e626f6f6b // "runbook"

// Migrate runs River's migrations (through its migrator) and creates the
// campaign tables. It is idempotent and safe to run from several
// processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", migrateLock)
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("campaign tables: %w", err)
	}
	return nil
}

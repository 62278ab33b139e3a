package journal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// SchemaVersion is the version of the `runbook` schema this build reads
// and writes; Migrate brings a database to it.
const SchemaVersion = 1

// migrations are the schema's versions in order: migrations[i] makes
// version i+1. Never edit one that was released; add the next.
var migrations = []string{
	// 1: runs, their records (each the line a local journal holds) and locks.
	`CREATE TABLE runbook.runs (
		id       text PRIMARY KEY,
		runbook  text NOT NULL DEFAULT '',
		lock_key text NOT NULL DEFAULT '',
		started  timestamptz NOT NULL
	);
	CREATE TABLE runbook.records (
		run_id text   NOT NULL REFERENCES runbook.runs (id) ON DELETE CASCADE,
		seq    bigint NOT NULL,
		line   text   NOT NULL,
		PRIMARY KEY (run_id, seq)
	);
	CREATE TABLE runbook.locks (
		key          text PRIMARY KEY,
		run_id       text NOT NULL DEFAULT '',
		holder       jsonb,
		owner        text NOT NULL DEFAULT '',
		heartbeat_at timestamptz,
		expires_at   timestamptz
	);`,
}

// StateError is why a PostgreSQL state cannot be used: Kind is
// "unreachable", "auth", "not_found" (no such database), "schema_missing",
// "schema_old" or "schema_newer". Nothing was started when it is returned.
type StateError struct {
	Kind  string
	Where string // the URL without its password
	Err   error
	Hint  string // what to do
}

func (e *StateError) Error() string {
	msg := "state database " + e.Where
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *StateError) Unwrap() error { return e.Err }

// RedactURL is a database URL without its password (for messages and
// printed commands: the password comes from PGPASSWORD or ~/.pgpass).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database URL (unparsable)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// connect opens a pool to rawURL and checks that the server answers,
// classifying the failure.
func connect(ctx context.Context, rawURL string, maxConns int32) (*pgxpool.Pool, error) {
	where := RedactURL(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, &StateError{Kind: "unreachable", Where: where, Err: errors.New("the URL cannot be parsed"),
			Hint: "write it as postgres://USER@HOST:PORT/DATABASE"}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "runbook"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &StateError{Kind: "unreachable", Where: where, Err: err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, classify(where, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

func classify(where, db string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01", "28000":
			return &StateError{Kind: "auth", Where: where, Err: errors.New(pe.Message),
				Hint: "check the user in the URL and its password (PGPASSWORD or ~/.pgpass)"}
		case "3D000":
			return &StateError{Kind: "not_found", Where: where, Err: errors.New(pe.Message),
				Hint: fmt.Sprintf("create it (createdb %s), then run `runbook state migrate`", db)}
		}
	}
	return &StateError{Kind: "unreachable", Where: where, Err: unwrapConnect(err),
		Hint: "check that PostgreSQL runs and that the URL's host and port are right (-state or RUNBOOK_STATE); nothing was started"}
}

// unwrapConnect drops pgconn's long "failed to connect to ..." prefix
// when the cause says it all.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}

// schemaVersion is the database's runbook schema version (0: none).
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v *int
	err := q.QueryRow(ctx, `SELECT max(version) FROM runbook.schema_version`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined table, schema
		return 0, nil
	}
	if err != nil || v == nil {
		return 0, err
	}
	return *v, nil
}

// OpenPostgres opens the state in the PostgreSQL database at url. It
// fails with a *StateError, having started nothing, when the server
// cannot be reached or refuses the user, or when the schema is missing
// or older (run `runbook state migrate`) or newer than this build knows
// (upgrade runbook).
func OpenPostgres(ctx context.Context, url string, opts ...PGOption) (*PGStore, error) {
	o := pgOptions{lease: DefaultPGLease, opTimeout: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	pool, err := connect(ctx, url, o.maxConns)
	if err != nil {
		return nil, err
	}
	where := RedactURL(url)
	v, err := schemaVersion(ctx, pool)
	if err == nil {
		err = checkVersion(where, v)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &PGStore{pool: pool, where: where, lease: o.lease, opTimeout: o.opTimeout}, nil
}

func checkVersion(where string, v int) error {
	switch {
	case v == 0:
		return &StateError{Kind: "schema_missing", Where: where, Err: errors.New("it holds no runbook schema"),
			Hint: "create it with `runbook state migrate -state " + where + "`"}
	case v < SchemaVersion:
		return &StateError{Kind: "schema_old", Where: where, Err: fmt.Errorf("its runbook schema is version %d, this runbook needs %d", v, SchemaVersion),
			Hint: "upgrade it with `runbook state migrate -state " + where + "`"}
	case v > SchemaVersion:
		return &StateError{Kind: "schema_newer", Where: where, Err: fmt.Errorf("its runbook schema is version %d, made by a newer runbook (this one knows up to %d)", v, SchemaVersion),
			Hint: "upgrade runbook on this machine; it will not write to it"}
	}
	return nil
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	From, To int // runbook schema versions before and after
	// River lists the River migration versions applied now (none when
	// River's tables were up to date).
	River []int
}

// migrateLock serializes concurrent Migrates (an advisory lock key).
const migrateLock = 0x72756e626f6f6b // "runbook"

// Migrate brings the database at url to SchemaVersion (the `runbook`
// schema, versioned in runbook.schema_version), then runs River's own
// migrations (its tables in the connection's default schema) through
// River's migrator, for the job queue that shares the database. It is
// idempotent and safe to run from several machines at once. A database
// whose schema is newer than this build is refused (*StateError).
func Migrate(ctx context.Context, url string) (*MigrateResult, error) {
	pool, err := connect(ctx, url, 2)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	where := RedactURL(url)
	res := &MigrateResult{}
	// One Migrate at a time, River's included: a session lock on a
	// connection held until the end.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, classify(where, "", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", where, err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrateLock))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS runbook;
			CREATE TABLE IF NOT EXISTS runbook.schema_version (
				version    integer PRIMARY KEY,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`); err != nil {
			return err
		}
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		res.From, res.To = v, v
		if v > SchemaVersion {
			return checkVersion(where, v)
		}
		for n := v + 1; n <= SchemaVersion; n++ {
			if _, err := tx.Exec(ctx, migrations[n-1]); err != nil {
				return fmt.Errorf("schema version %d: %w", n, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO runbook.schema_version (version) VALUES ($1)`, n); err != nil {
				return err
			}
			res.To = n
		}
		return nil
	})
	if err != nil {
		var se *StateError
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("migrate %s: %w", where, err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: river: %w", where, err)
	}
	rr, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: river: %w", where, err)
	}
	for _, v := range rr.Versions {
		res.River = append(res.River, v.Version)
	}
	return res, nil
}

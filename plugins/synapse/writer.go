package synapse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/sdk"
)

// masTables are the MAS tables the migration fills, parents first.
var masTables = []string{
	"users",
	"user_passwords",
	"user_emails",
	"user_unsupported_third_party_ids",
	"upstream_oauth_links",
	"compat_sessions",
	"compat_access_tokens",
	"compat_refresh_tokens",
}

// masColumns are the columns written per table, in COPY order.
var masColumns = map[string][]string{
	"users":                            {"user_id", "username", "created_at", "locked_at", "can_request_admin", "is_guest", "deactivated_at"},
	"user_passwords":                   {"user_password_id", "user_id", "hashed_password", "created_at", "version", "upgraded_from_id"},
	"user_emails":                      {"user_email_id", "user_id", "email", "created_at"},
	"user_unsupported_third_party_ids": {"user_id", "medium", "address", "created_at"},
	"upstream_oauth_links":             {"upstream_oauth_link_id", "upstream_oauth_provider_id", "user_id", "subject", "created_at", "human_account_name"},
	"compat_sessions":                  {"compat_session_id", "user_id", "device_id", "human_name", "created_at", "is_synapse_admin", "last_active_at", "last_active_ip", "user_agent", "finished_at", "user_session_id"},
	"compat_access_tokens":             {"compat_access_token_id", "compat_session_id", "access_token", "created_at", "expires_at"},
	"compat_refresh_tokens":            {"compat_refresh_token_id", "compat_session_id", "compat_access_token_id", "refresh_token", "created_at", "consumed_at"},
}

// advisoryLockKey is the key the reference tool (syn2mas) locks, so that
// the two never write the same MAS database at once.
const advisoryLockKey int64 = 6584285998412104315

// lockMAS takes the session advisory lock on conn.
func lockMAS(ctx context.Context, db *dbTarget, conn *pgx.Conn) error {
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", advisoryLockKey).Scan(&ok); err != nil {
		return db.classify(err, "take the migration lock on")
	}
	if !ok {
		return sdk.Errorf(sdk.KindConflict, true, "wait for the other migration (synapse.migrate or mas-cli syn2mas) to finish",
			"another migration holds the lock on the %s", db.where())
	}
	return nil
}

func unlockMAS(conn *pgx.Conn) {
	_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", advisoryLockKey)
}

// nonEmptyTable returns the first of the migrated MAS tables holding a
// row, or "".
func nonEmptyTable(ctx context.Context, db *dbTarget, q pgx.Tx) (string, error) {
	for _, t := range masTables {
		var one int
		err := q.QueryRow(ctx, "SELECT 1 FROM "+pgx.Identifier{t}.Sanitize()+" LIMIT 1").Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			e := db.classify(err, "read table "+t+" of")
			return "", sdk.Errorf(sdk.KindInvalid, false, "check that mas_config points at a MAS database whose schema is migrated (mas-cli database migrate)",
				"is this actually a MAS database? %v", e)
		}
		return t, nil
	}
	return "", nil
}

// notEmptyError is the error for a MAS database that already holds data.
func notEmptyError(db *dbTarget, table string) *sdk.Error {
	return sdk.Errorf(sdk.KindConflict, false,
		"migrate into a fresh MAS database (drop and recreate it, then run mas-cli database migrate); if this is the result of an earlier synapse.migrate, roll that step back first",
		"the %s is not empty: rows found in at least %q", db.where(), table)
}

// rebuildSettings are the transaction's settings for the rebuild: memory
// for the index sorts and for the foreign key checks (which run with
// maintenance_work_mem), and no parallel workers for the index builds:
// most of them run while the same server reads Synapse and COPYs the next
// rows, and on the 2-core benchmark machine parallel builds took 35-60%
// more CPU time for the same indexes and were slower, also end to end.
var rebuildSettings = []string{
	"SET LOCAL maintenance_work_mem = '256MB'",
	"SET LOCAL work_mem = '128MB'",
	"SET LOCAL max_parallel_maintenance_workers = 0",
}

// configureRebuild applies rebuildSettings to tx.
func configureRebuild(ctx context.Context, tx pgx.Tx) error {
	for _, s := range rebuildSettings {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// savedDef is a constraint or index dropped for the load.
type savedDef struct {
	Table string `json:"table"`
	Name  string `json:"name"`
	Def   string `json:"def"`
	Kind  string `json:"kind"`          // "index", "key" (p/u/other) or "fkey"
	Ref   string `json:"ref,omitempty"` // for a foreign key: the table it refers to
}

// pauseConstraints drops, inside tx, the foreign keys pointing at the
// migrated tables, their own keys and foreign keys, then their remaining
// indexes, and returns the definitions to restore. Since everything runs
// in one transaction, a failure before restoreConstraints rolls the drops
// back with the rest.
func pauseConstraints(ctx context.Context, tx pgx.Tx) ([]savedDef, error) {
	var defs []savedDef
	rows, err := tx.Query(ctx, `
SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype::text,
       CASE WHEN c.contype = 'f' THEN c.confrelid::regclass::text ELSE '' END
FROM pg_constraint c
WHERE (c.contype = 'f' AND c.confrelid IN (SELECT unnest($1::text[])::regclass))
   OR (c.contype IN ('p', 'u', 'f') AND c.conrelid IN (SELECT unnest($1::text[])::regclass))
ORDER BY (c.contype = 'f') DESC, c.conrelid::regclass::text, c.conname`, masTables)
	if err != nil {
		return nil, fmt.Errorf("list constraints: %w", err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var d savedDef
		var contype string
		if err := rows.Scan(&d.Table, &d.Name, &d.Def, &contype, &d.Ref); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list constraints: %w", err)
		}
		if seen[d.Table+"\x00"+d.Name] {
			continue
		}
		seen[d.Table+"\x00"+d.Name] = true
		d.Kind = "key"
		if contype == "f" {
			d.Kind = "fkey"
		}
		defs = append(defs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list constraints: %w", err)
	}
	for _, d := range defs { // foreign keys come first
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", d.Table, pgx.Identifier{d.Name}.Sanitize())); err != nil {
			return nil, fmt.Errorf("drop constraint %s on %s: %w", d.Name, d.Table, err)
		}
	}
	rows, err = tx.Query(ctx, `
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = ANY($1::text[])
ORDER BY tablename, indexname`, masTables)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	var idx []savedDef
	for rows.Next() {
		d := savedDef{Kind: "index"}
		if err := rows.Scan(&d.Table, &d.Name, &d.Def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list indexes: %w", err)
		}
		idx = append(idx, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	for _, d := range idx {
		if _, err := tx.Exec(ctx, "DROP INDEX "+pgx.Identifier{d.Name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop index %s: %w", d.Name, err)
		}
	}
	return append(defs, idx...), nil
}

// restoreConstraints recreates what pauseConstraints dropped: indexes,
// then primary and unique keys, then foreign keys. Adding a constraint
// validates every row.
func restoreConstraints(ctx context.Context, tx pgx.Tx, defs []savedDef, ev sdk.Events) error {
	for _, kind := range []string{"index", "key", "fkey"} {
		if kind == "fkey" && slices.ContainsFunc(defs, func(d savedDef) bool { return d.Kind == "fkey" }) {
			// Each foreign key is checked by one anti-join of the table
			// with the one it refers to. Both sides have a B-tree on the
			// key by now, and COPY FREEZE marked every page all-visible,
			// so a merge join of two index-only scans reads no heap page;
			// the planner, left alone, hashes the whole referenced table.
			if _, err := tx.Exec(ctx, "SET LOCAL enable_hashjoin = off"); err != nil {
				return fmt.Errorf("prepare the foreign key checks: %w", err)
			}
			defer func() { _, _ = tx.Exec(ctx, "RESET enable_hashjoin") }()
		}
		for _, d := range defs {
			if d.Kind != kind {
				continue
			}
			var stmt string
			if kind == "index" {
				stmt = d.Def
			} else {
				stmt = fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", d.Table, pgx.Identifier{d.Name}.Sanitize(), d.Def)
			}
			t0 := time.Now()
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("restore %s %s on %s: %w", kind, d.Name, d.Table, err)
			}
			ev.Log(sdk.LevelDebug, fmt.Sprintf("%s %s rebuilt in %s", kind, d.Name, time.Since(t0).Round(time.Millisecond)))
		}
	}
	return nil
}

// truncateForLoad empties the migrated tables inside tx, once their
// foreign keys are paused, after checking again, under an ACCESS
// EXCLUSIVE lock, that they hold no row (the first check ran before the
// lock). It returns the first table found non-empty, if any, and then
// truncates nothing.
//
// Truncating tables that are already empty changes no data, but gives
// them new, empty files for this transaction: rows left dead by an earlier
// rolled-back run (a dry run) are not scanned again by the index builds,
// COPY may write the rows already frozen (COPY FREEZE; no later vacuum
// pass to freeze or set hint bits), and a rollback simply drops the new
// files, leaving the old ones exactly as they were.
func truncateForLoad(ctx context.Context, tx pgx.Tx) (string, error) {
	names := quoteListSlice(masTables)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+joinComma(names)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return "", fmt.Errorf("lock the migrated tables: %w", err)
	}
	for _, t := range masTables {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM "+pgx.Identifier{t}.Sanitize()+" LIMIT 1").Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read table %s: %w", t, err)
		}
		return t, nil
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+joinComma(names)); err != nil {
		return "", fmt.Errorf("truncate the migrated tables: %w", err)
	}
	return "", nil
}

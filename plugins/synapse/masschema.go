package synapse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The MAS schema versions (`_sqlx_migrations.version`, the newest applied
// migration) the plugin writes into. The oldest is the migration that
// added users.deactivated_at; the newest is the last one whose layout of
// the migrated tables was checked (MAS's 167th migration).
const (
	masMinSchema int64 = 20250311093145
	masMaxSchema int64 = 20260720134722
)

// checkMASSchema finds a MAS database whose schema the plugin does not
// know: no migrations table, a failed migration, a version out of the
// supported range, or a migrated table without a column the plugin
// writes. It reports whether the migrated tables are all there.
func checkMASSchema(ctx context.Context, tx pgx.Tx, r *report) (bool, error) {
	var has bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('_sqlx_migrations') IS NOT NULL`).Scan(&has); err != nil {
		return false, err
	}
	if !has {
		r.errorf("the MAS database has no _sqlx_migrations table: it is not a MAS database, or its schema was never created; run `mas-cli database migrate`")
	} else {
		var newest, failed *int64
		if err := tx.QueryRow(ctx, `SELECT max(version) FILTER (WHERE success), min(version) FILTER (WHERE NOT success) FROM _sqlx_migrations`).Scan(&newest, &failed); err != nil {
			return false, fmt.Errorf("read _sqlx_migrations: %w", err)
		}
		switch {
		case failed != nil:
			r.errorf("MAS schema migration %d failed: run `mas-cli database migrate` again", *failed)
		case newest == nil:
			r.errorf("the MAS database has no schema migration applied: run `mas-cli database migrate`")
		case *newest < masMinSchema:
			r.errorf("the MAS schema is at version %d, older than %d, the oldest this plugin writes into: upgrade MAS and run `mas-cli database migrate`", *newest, masMinSchema)
		case *newest > masMaxSchema:
			r.errorf("the MAS schema is at version %d, newer than %d, the newest this plugin knows: use a newer runbook, or a MAS release whose schema is at most %d", *newest, masMaxSchema, masMaxSchema)
		}
	}
	rows, err := tx.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ANY($1::text[])`, masTables)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			rows.Close()
			return false, err
		}
		have[t] = true
		have[t+"."+c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	var missingTables, missingCols []string
	for _, t := range masTables {
		if !have[t] {
			missingTables = append(missingTables, t)
			continue
		}
		for _, c := range masColumns[t] {
			if !have[t+"."+c] {
				missingCols = append(missingCols, t+"."+c)
			}
		}
	}
	if len(missingTables) > 0 {
		r.errorf("the MAS database lacks the tables %s: is this a MAS database? run `mas-cli database migrate`", strings.Join(missingTables, ", "))
	}
	if len(missingCols) > 0 {
		slices.Sort(missingCols)
		r.errorf("the MAS database lacks the columns %s, which the migration writes: its schema is too old; upgrade MAS and run `mas-cli database migrate`", strings.Join(missingCols, ", "))
	}
	return len(missingTables) == 0, nil
}

// checkLock reports another migration holding the MAS advisory lock.
func checkLock(ctx context.Context, tx pgx.Tx, r *report) error {
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", advisoryLockKey).Scan(&ok); err != nil {
		return fmt.Errorf("try the migration lock: %w", err)
	}
	if !ok {
		r.errorf("another migration (synapse.migrate, its undo, or mas-cli syn2mas) holds the lock on the MAS database: wait for it to finish")
		return nil
	}
	_, err := tx.Exec(ctx, "SELECT pg_advisory_unlock($1)", advisoryLockKey)
	return err
}

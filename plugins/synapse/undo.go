package synapse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/sdk"
)

var _ sdk.Undoer = (*migrateAction)(nil)

// Undo empties the MAS tables the migration filled (they were empty
// before it). When every table that refers to them, directly or not, is
// empty too, one TRUNCATE does it; otherwise the rows are deleted child
// tables first, so that rows MAS wrote since in other tables are kept or,
// if they refer to migrated rows without ON DELETE CASCADE, the undo stops
// with a conflict instead of deleting them.
func (a *migrateAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if len(req.UndoState) == 0 {
		ev.Log(sdk.LevelInfo, "nothing to undo: the migration wrote nothing")
		return nil
	}
	var st undoState
	if err := json.Unmarshal(req.UndoState, &st); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	for _, t := range st.Tables {
		if !slices.Contains(masTables, t) {
			return sdk.Errorf(sdk.KindInternal, false, "", "undo state names table %q, which the migration never fills", t)
		}
	}
	var in migrateInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return err
	}
	e, err := loadEnv(in.SynapseConfig, in.MASConfig, in.SynapseDatabaseURL, in.MASDatabaseURL)
	if err != nil {
		return err
	}
	conn, err := e.masDB.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := lockMAS(ctx, e.masDB, conn); err != nil {
		return err
	}
	defer unlockMAS(conn)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return e.masDB.classify(err, "start a transaction on")
	}
	defer func() { _ = tx.Rollback(context.Background()) }()

	others, err := referencingTables(ctx, tx, st.Tables)
	if err != nil {
		return e.masDB.classify(err, "list the tables referring to the migrated ones on")
	}
	var busy []string
	for _, t := range others {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM "+t+" LIMIT 1").Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return e.masDB.classify(err, "read "+t+" of")
		}
		busy = append(busy, t)
	}
	if len(busy) == 0 {
		all := append(quoteListSlice(st.Tables), others...)
		if _, err := tx.Exec(ctx, "TRUNCATE "+joinComma(all)); err != nil {
			return e.masDB.classify(err, "empty the migrated tables of")
		}
	} else {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("tables %v hold rows written since the migration: deleting migrated rows one table at a time", busy))
		for i := len(masTables) - 1; i >= 0; i-- {
			t := masTables[i]
			if !slices.Contains(st.Tables, t) {
				continue
			}
			if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{t}.Sanitize()); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "23503" {
					return sdk.Errorf(sdk.KindConflict, false,
						"MAS has written data that refers to migrated rows (it ran after the migration); remove that data or restore the MAS backup",
						"empty %s: rows in %s refer to it", t, pgErr.TableName)
				}
				return e.masDB.classify(err, "empty table "+t+" of")
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return e.masDB.classify(err, "commit the undo on")
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("emptied %d MAS tables", len(st.Tables)))
	return nil
}

// referencingTables lists, as quoted names, the tables outside tables that
// hold a foreign key into them, directly or through other such tables.
func referencingTables(ctx context.Context, tx pgx.Tx, tables []string) ([]string, error) {
	rows, err := tx.Query(ctx, `
WITH RECURSIVE ref(oid) AS (
  SELECT unnest($1::text[])::regclass::oid
  UNION
  SELECT c.conrelid FROM pg_constraint c JOIN ref ON c.confrelid = ref.oid WHERE c.contype = 'f'
)
SELECT oid::regclass::text FROM ref
WHERE oid NOT IN (SELECT unnest($1::text[])::regclass::oid)
ORDER BY 1`, tables)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func quoteListSlice(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

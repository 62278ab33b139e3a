package synapse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/sdk"
)

var _ sdk.Undoer = (*migrateAction)(nil)

// Undo empties the MAS tables the migration filled (they were empty
// before it). It first makes sure that this deletes nothing MAS wrote
// since: the migrated tables must hold exactly the rows the migration
// wrote, and no row of any other table may refer to a migrated row,
// directly or through rows that a delete would cascade to (the foreign
// keys are read from the catalog). Otherwise it stops with a conflict
// naming the tables and counts, unless the operator forces it (rollback
// -force), which deletes those rows too.
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
	// Nothing may change the tables between the look and the delete.
	if _, err := tx.Exec(ctx, "LOCK TABLE "+joinComma(quoteListSlice(st.Tables))+" IN EXCLUSIVE MODE"); err != nil {
		return e.masDB.classify(err, "lock the migrated tables of")
	}

	g, err := loadFKGraph(ctx, tx, st.Tables)
	if err != nil {
		return e.masDB.classify(err, "read the foreign keys of")
	}
	drift, err := tableDrift(ctx, tx, st)
	if err != nil {
		return e.masDB.classify(err, "count the migrated rows of")
	}
	refs, err := g.referringRows(ctx, tx)
	if err != nil {
		return e.masDB.classify(err, "look for rows referring to migrated rows in")
	}
	if len(drift)+len(refs) > 0 {
		var what []string
		what = append(what, drift...)
		for _, r := range refs {
			what = append(what, r.String())
		}
		if !req.Force {
			return sdk.Errorf(sdk.KindConflict, false,
				"MAS has run since the migration: keep the migration, remove that data yourself, restore the MAS backup, or roll back with -force to delete it along with the migrated rows",
				"MAS data changed since the migration, the undo would delete or change it: %s", strings.Join(what, "; "))
		}
		ev.Log(sdk.LevelWarn, "forced undo: deleting data written since the migration: "+strings.Join(what, "; "))
	}

	if len(refs) == 0 && len(drift) == 0 && g.allReferrersEmpty(ctx, tx) {
		all := append(quoteListSlice(st.Tables), g.referrerNames()...)
		if _, err := tx.Exec(ctx, "TRUNCATE "+joinComma(all)); err != nil {
			return e.masDB.classify(err, "empty the migrated tables of")
		}
	} else {
		if req.Force {
			for _, t := range g.deleteOrder() {
				tag, err := tx.Exec(ctx, "DELETE FROM "+t+" r0 WHERE "+g.deletedPred(t, "r0", nil))
				if err != nil {
					return e.masDB.classify(err, "delete the rows of "+t+" referring to migrated rows in")
				}
				ev.Log(sdk.LevelInfo, fmt.Sprintf("deleted %d rows of %s", tag.RowsAffected(), t))
			}
		}
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

// tableDrift compares the rows of each migrated table with what the
// migration wrote; it lists the tables that differ. Undo states without
// counts are not compared.
func tableDrift(ctx context.Context, tx pgx.Tx, st undoState) ([]string, error) {
	if st.Written == nil {
		return nil, nil
	}
	var out []string
	for _, t := range st.Tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return nil, err
		}
		if w := st.Written[t]; n != w {
			out = append(out, fmt.Sprintf("%s holds %d rows, the migration wrote %d", t, n, w))
		}
	}
	return out, nil
}

// fkEdge is a foreign key of child referring to parent.
type fkEdge struct {
	name, child, parent   string // child and parent as quoted, qualified-if-needed names
	childCols, parentCols []string
	onDelete              string // pg_constraint.confdeltype: a, r, c, n, d
}

// deletes reports whether deleting a parent row deletes (or, for a
// blocking key, would have to delete) the child rows referring to it.
func (f fkEdge) deletes() bool { return f.onDelete != "n" && f.onDelete != "d" }

// fkGraph is every foreign key of the database, around the migrated tables.
type fkGraph struct {
	migrated map[string]bool
	into     map[string][]fkEdge // child -> its foreign keys
	// referrers are the tables outside the migrated ones that refer to
	// them, directly or through other referrers, in breadth-first order.
	referrers []string
	depth     map[string]int // referrer -> longest chain of keys to a migrated table
}

func loadFKGraph(ctx context.Context, tx pgx.Tx, tables []string) (*fkGraph, error) {
	rows, err := tx.Query(ctx, `
SELECT c.conname, quote_ident(cn.nspname) || '.' || quote_ident(cc.relname), quote_ident(pn.nspname) || '.' || quote_ident(pc.relname),
       c.confdeltype::text,
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE c.contype = 'f'
ORDER BY 2, 1`)
	if err != nil {
		return nil, err
	}
	g := &fkGraph{migrated: map[string]bool{}, into: map[string][]fkEdge{}, depth: map[string]int{}}
	var edges []fkEdge
	for rows.Next() {
		var f fkEdge
		if err := rows.Scan(&f.name, &f.child, &f.parent, &f.onDelete, &f.childCols, &f.parentCols); err != nil {
			rows.Close()
			return nil, err
		}
		edges = append(edges, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range tables {
		var q string
		if err := tx.QueryRow(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass`, pgx.Identifier{t}.Sanitize()).Scan(&q); err != nil {
			return nil, err
		}
		g.migrated[q] = true
	}
	for _, f := range edges {
		g.into[f.child] = append(g.into[f.child], f)
	}
	// Breadth-first from the migrated tables, over every key.
	seen := map[string]bool{}
	frontier := map[string]bool{}
	for t := range g.migrated {
		frontier[t] = true
	}
	for len(frontier) > 0 {
		next := map[string]bool{}
		var level []string
		for _, f := range edges {
			if frontier[f.parent] && !g.migrated[f.child] && !seen[f.child] {
				seen[f.child] = true
				next[f.child] = true
				level = append(level, f.child)
			}
		}
		slices.Sort(level)
		g.referrers = append(g.referrers, level...)
		frontier = next
	}
	for _, t := range g.referrers {
		g.depth[t] = g.longest(t, map[string]bool{})
	}
	return g, nil
}

// longest is the longest chain of deleting keys from t to a migrated
// table (0 when none).
func (g *fkGraph) longest(t string, path map[string]bool) int {
	path[t] = true
	defer delete(path, t)
	best := 0
	for _, f := range g.into[t] {
		switch {
		case !f.deletes() || path[f.parent]:
		case g.migrated[f.parent]:
			best = max(best, 1)
		default:
			if d := g.longest(f.parent, path); d > 0 {
				best = max(best, d+1)
			}
		}
	}
	return best
}

// deletedPred is an SQL condition on alias (a row of table) that holds
// when emptying the migrated tables deletes the row: every row of a
// migrated table, and rows of other tables that refer to such a row by a
// cascading or blocking key (a blocking key fails the delete; forced, the
// undo deletes them first). "FALSE" when none can be.
func (g *fkGraph) deletedPred(table, alias string, path map[string]bool) string {
	if g.migrated[table] {
		return "TRUE"
	}
	return g.pred(table, alias, path, fkEdge.deletes)
}

// referredPred holds for the rows of table that the undo would delete or
// change (a key ON DELETE SET NULL or SET DEFAULT).
func (g *fkGraph) referredPred(table, alias string) string {
	return g.pred(table, alias, nil, func(fkEdge) bool { return true })
}

func (g *fkGraph) pred(table, alias string, path map[string]bool, follow func(fkEdge) bool) string {
	if path == nil {
		path = map[string]bool{}
	}
	path[table] = true
	defer delete(path, table)
	var ors []string
	for i, f := range g.into[table] {
		if !follow(f) || path[f.parent] {
			continue
		}
		p := fmt.Sprintf("%s_%d", alias, i)
		parent := g.deletedPred(f.parent, p, path)
		if parent == "FALSE" {
			continue
		}
		var on []string
		for j := range f.childCols {
			on = append(on, fmt.Sprintf("%s.%s = %s.%s", p, f.parentCols[j], alias, f.childCols[j]))
		}
		cond := strings.Join(on, " AND ")
		if parent != "TRUE" {
			cond += " AND (" + parent + ")"
		}
		ors = append(ors, fmt.Sprintf("EXISTS (SELECT 1 FROM %s %s WHERE %s)", f.parent, p, cond))
	}
	if len(ors) == 0 {
		return "FALSE"
	}
	return strings.Join(ors, " OR ")
}

// referring is what the undo would do to rows of one other table.
type referring struct {
	table   string
	rows    int64
	via     []string // the keys
	deleted bool     // deleted with the migrated rows (else: a key set to NULL)
	blocks  bool     // some key is NO ACTION / RESTRICT
}

func (r referring) String() string {
	effect := "deleted with them (ON DELETE CASCADE)"
	switch {
	case r.blocks:
		effect = "blocking the delete (a foreign key without ON DELETE CASCADE)"
	case !r.deleted:
		effect = "their reference set to NULL (ON DELETE SET NULL)"
	}
	return fmt.Sprintf("%d rows of %s refer to migrated rows (%s), %s", r.rows, r.table, strings.Join(r.via, ", "), effect)
}

// referringRows counts, per table outside the migrated ones, the rows the
// undo would delete or change.
func (g *fkGraph) referringRows(ctx context.Context, tx pgx.Tx) ([]referring, error) {
	var out []referring
	for _, t := range g.referrers {
		pred := g.referredPred(t, "r0")
		if pred == "FALSE" {
			continue
		}
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t+" r0 WHERE "+pred).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		if n == 0 {
			continue
		}
		r := referring{table: t, rows: n, deleted: g.deletedPred(t, "r0", nil) != "FALSE"}
		for _, f := range g.into[t] {
			if g.migrated[f.parent] || slices.Contains(g.referrers, f.parent) {
				r.via = append(r.via, f.name+" → "+f.parent)
				if f.onDelete == "a" || f.onDelete == "r" {
					r.blocks = true
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// deleteOrder lists the referrers whose rows a forced undo deletes, the
// ones farthest from the migrated tables first.
func (g *fkGraph) deleteOrder() []string {
	var out []string
	for _, t := range g.referrers {
		if g.depth[t] > 0 {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return g.depth[b] - g.depth[a] })
	return out
}

// allReferrersEmpty reports whether every referrer is empty, so that one
// TRUNCATE of the migrated tables and the referrers changes nothing else.
func (g *fkGraph) allReferrersEmpty(ctx context.Context, tx pgx.Tx) bool {
	for _, t := range g.referrers {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM "+t+" LIMIT 1").Scan(&one)
		if !errors.Is(err, pgx.ErrNoRows) {
			return false
		}
	}
	return true
}

func (g *fkGraph) referrerNames() []string { return g.referrers }

func quoteListSlice(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

func joinComma(s []string) string { return strings.Join(s, ", ") }

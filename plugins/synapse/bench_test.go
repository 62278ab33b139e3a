package synapse

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/sdk"
)

// BenchmarkMigrateVsReference generates a Synapse database of the size in
// the issue (100k users, 60k emails, 10k external ids, 200k devices, 300k
// access tokens, 20k refresh pairs), migrates it with synapse.migrate
// (Synapse reads, COPY, constraints rebuilt), then loads the very same MAS
// rows the reference tool's way (constraints paused, batches of 4,096 rows
// of INSERT ... SELECT FROM UNNEST over 8 connections, constraints
// rebuilt) and the physical limit (one plain COPY per table into tables
// without constraints or indexes). It reports rows/s of each and the
// ratios. Scale with RUNBOOK_BENCH_SCALE (default 1.0). Run by make bench.
func BenchmarkMigrateVsReference(b *testing.B) {
	scale := 1.0
	if s := os.Getenv("RUNBOOK_BENCH_SCALE"); s != "" {
		fmt.Sscanf(s, "%g", &scale)
	}
	n := func(x int) int { return int(float64(x) * scale) }
	w := newWorld(b)
	ctx := context.Background()
	c := w.conn(w.synURL)
	t0 := time.Now()
	if err := generate(ctx, c, sizes{Users: n(100_000), Emails: n(60_000), ExternalIDs: n(10_000), Devices: n(200_000),
		AccessTokens: n(300_000), RefreshPairs: n(20_000)}); err != nil {
		b.Fatal(err)
	}
	c.Close(ctx)
	b.Logf("generated Synapse data in %s", time.Since(t0).Round(time.Millisecond))

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Ours: the whole migration.
		t0 = time.Now()
		rec := &recorder{}
		res, err := sdk.Local(New()).Apply(ctx, "migrate", &sdk.ApplyRequest{Inputs: w.inputs(nil)}, rec)
		if err != nil {
			b.Fatal(err)
		}
		ours := time.Since(t0)
		for _, l := range rec.logs {
			if os.Getenv("RUNBOOK_BENCH_VERBOSE") != "" {
				b.Log(l)
			}
		}
		var total int64
		for _, v := range counts2(res, "written") {
			total += v
		}
		data := w.dump(ctx)
		if err := sdk.Local(New()).Undo(ctx, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), UndoState: res.UndoState}, sdk.NopEvents{}); err != nil {
			b.Fatal(err)
		}

		// Reference: UNNEST batches over 8 connections, constraints paused.
		t0 = time.Now()
		if err := w.referenceLoad(ctx, data); err != nil {
			b.Fatal(err)
		}
		ref := time.Since(t0)
		if err := sdk.Local(New()).Undo(ctx, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), UndoState: res.UndoState}, sdk.NopEvents{}); err != nil {
			b.Fatal(err)
		}

		// Our write path alone on the same rows: pause, COPY, rebuild.
		t0 = time.Now()
		if err := w.oursLoad(ctx, data); err != nil {
			b.Fatal(err)
		}
		oursWrite := time.Since(t0)
		if err := sdk.Local(New()).Undo(ctx, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), UndoState: res.UndoState}, sdk.NopEvents{}); err != nil {
			b.Fatal(err)
		}

		// Limit: plain COPY into tables without constraints, rolled back.
		limit, err := w.limitLoad(ctx, data)
		if err != nil {
			b.Fatal(err)
		}

		rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
		b.Logf("rows written: %d", total)
		b.Logf("synapse.migrate (read+COPY+rebuild): %8s %10.0f rows/s", ours.Round(time.Millisecond), rate(ours))
		b.Logf("synapse.migrate write path (COPY+rebuild, same rows): %8s %10.0f rows/s", oursWrite.Round(time.Millisecond), rate(oursWrite))
		b.Logf("reference (UNNEST x4096, 8 conns, rebuild):   %8s %10.0f rows/s", ref.Round(time.Millisecond), rate(ref))
		b.Logf("limit (plain COPY, no constraints):  %8s %10.0f rows/s", limit.Round(time.Millisecond), rate(limit))
		b.Logf("end to end (Synapse reads included): %.2f x reference (goal >= 1.5), %.2f of the limit (goal >= 0.6)",
			ref.Seconds()/ours.Seconds(), limit.Seconds()/ours.Seconds())
		b.Logf("write path on the same rows:         %.2f x reference (goal >= 1.5), %.2f of the limit (goal >= 0.6)",
			ref.Seconds()/oursWrite.Seconds(), limit.Seconds()/oursWrite.Seconds())
		b.ReportMetric(rate(ours), "rows/s")
		b.ReportMetric(ref.Seconds()/oursWrite.Seconds(), "x_reference")
		b.ReportMetric(limit.Seconds()/oursWrite.Seconds(), "x_limit")
	}
}

func counts2(res *sdk.Result, name string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range res.Outputs.GetAttr(name).AsValueMap() {
		n, _ := v.AsBigFloat().Int64()
		out[k] = n
	}
	return out
}

// tableData is every row of the migrated MAS tables, column-major ready.
type tableData map[string][][]any

func (w *world) dump(ctx context.Context) tableData {
	c := w.conn(w.masURL)
	defer c.Close(ctx)
	out := tableData{}
	for _, t := range masTables {
		rows, err := c.Query(ctx, "SELECT "+strings.Join(masColumns[t], ", ")+" FROM "+t)
		if err != nil {
			w.t.Fatal(err)
		}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				w.t.Fatal(err)
			}
			out[t] = append(out[t], v)
		}
		rows.Close()
	}
	return out
}

// columnTypes returns the SQL types of a table's migrated columns.
func columnTypes(ctx context.Context, c *pgx.Conn, table string) ([]string, error) {
	var out []string
	for _, col := range masColumns[table] {
		var typ string
		if err := c.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attname = $2`, table, col).Scan(&typ); err != nil {
			return nil, err
		}
		out = append(out, typ)
	}
	return out, nil
}

// referenceLoad loads data the way the reference tool does: constraints
// and indexes dropped in a committed transaction, batches of 4,096 rows
// of INSERT ... SELECT * FROM UNNEST(...) spread over 8 connections with
// one long transaction each, then everything rebuilt in one transaction.
func (w *world) referenceLoad(ctx context.Context, data tableData) error {
	admin := w.conn(w.masURL)
	defer admin.Close(ctx)
	tx, err := admin.Begin(ctx)
	if err != nil {
		return err
	}
	defs, err := pauseConstraints(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	type batch struct {
		sql  string
		args []any
	}
	batches := make(chan batch, 16)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		c := w.conn(w.masURL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(ctx)
			tx, err := c.Begin(ctx)
			if err != nil {
				errs <- err
				return
			}
			for b := range batches {
				if _, err := tx.Exec(ctx, b.sql, b.args...); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
			if err := tx.Commit(ctx); err != nil {
				errs <- err
			}
		}()
	}
	for _, t := range masTables {
		types, err := columnTypes(ctx, admin, t)
		if err != nil {
			close(batches)
			return err
		}
		params := make([]string, len(types))
		for i, ty := range types {
			params[i] = fmt.Sprintf("$%d::%s[]", i+1, ty)
		}
		sql := fmt.Sprintf("INSERT INTO %s (%s) SELECT * FROM UNNEST(%s)", t, strings.Join(masColumns[t], ", "), strings.Join(params, ", "))
		rows := data[t]
		for lo := 0; lo < len(rows); lo += 4096 {
			hi := min(lo+4096, len(rows))
			cols := make([]any, len(types))
			for ci := range types {
				col := make([]any, hi-lo)
				for ri := lo; ri < hi; ri++ {
					col[ri-lo] = rows[ri][ci]
				}
				cols[ci] = col
			}
			batches <- batch{sql, cols}
		}
	}
	close(batches)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	tx, err = admin.Begin(ctx)
	if err != nil {
		return err
	}
	if err := restoreConstraints(ctx, tx, defs, sdk.NopEvents{}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// oursLoad loads data with synapse.migrate's write path: one transaction,
// constraints and indexes paused, one COPY per table, everything rebuilt.
func (w *world) oursLoad(ctx context.Context, data tableData) error {
	c := w.conn(w.masURL)
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, set := range []string{"SET LOCAL maintenance_work_mem = '256MB'", "SET LOCAL work_mem = '128MB'"} {
		if _, err := tx.Exec(ctx, set); err != nil {
			return err
		}
	}
	defs, err := pauseConstraints(ctx, tx)
	if err != nil {
		return err
	}
	for _, t := range masTables {
		if _, err := copyRows(ctx, tx, t, data[t]); err != nil {
			return err
		}
	}
	if err := restoreConstraints(ctx, tx, defs, sdk.NopEvents{}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// limitLoad times one plain COPY per table into tables whose constraints
// and indexes are gone, inside a transaction that is rolled back.
func (w *world) limitLoad(ctx context.Context, data tableData) (time.Duration, error) {
	c := w.conn(w.masURL)
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := pauseConstraints(ctx, tx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for _, t := range masTables {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t}, masColumns[t], pgx.CopyFromRows(data[t])); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

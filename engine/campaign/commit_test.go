package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// effectRunbook appends a line to the target's effect file in its second
// step: not idempotent, so a run applied twice shows two lines.
const effectRunbook = `
runbook "effects" {
  lock = "host-${var.host}"
}
variable "host" {
  type = string
}
variable "dir" {
  type = string
}
step "core.noop" "a" {
  with = { values = var.host }
}
step "core.exec" "effect" {
  with       = { command = "sh", args = ["-c", "echo once >> ${var.dir}/${var.host}.effects"] }
  depends_on = [step.a]
}
`

// finalRecords counts the committed run_state records of run id that end
// it (succeeded), and its run_resumed records, as another connection
// sees them.
func finalRecords(t *testing.T, pool *pgxpool.Pool, id string) (final, resumed int) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE strpos(line, '"type":"run_state","state":"succeeded"') > 0),
		count(*) FILTER (WHERE strpos(line, '"type":"run_resumed"') > 0)
		FROM runbook.records WHERE run_id = $1`, id).Scan(&final, &resumed)
	if err != nil {
		t.Fatal(err)
	}
	return final, resumed
}

// TestRunEndCommittedWithJob: a run's end record and its job's completion
// are one commit. The transaction that ends target h002 fails once after
// appending the run's end record: neither the record nor the job's
// completion is visible afterwards; the job is retried, resumes the run
// (its effect is not applied again) and commits both.
func TestRunEndCommittedWithJob(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.file, []byte(effectRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	effects := filepath.Join(f.dir, "effects")
	if err := os.MkdirAll(effects, 0o755); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("host,dir\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&csv, "h%03d,%s\n", i, effects)
	}
	if _, err := f.start(t, "commit", csv.String(), Spec{}); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(WorkerConfig{Pool: f.pool, Capacity: 2, Session: f.opts()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	var seen []string // what another connection saw at each call
	injected := errors.New("injected failure after the run's end record")
	w.finishFault = func(ctx context.Context, tx pgx.Tx, tg *target) error {
		if tg.LockKey != "host-h002" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		var inTx int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM runbook.records WHERE run_id = $1 AND strpos(line, '"type":"run_state","state":"succeeded"') > 0`, tg.RunID).Scan(&inTx); err != nil {
			return err
		}
		final, resumed := finalRecords(t, f.pool, tg.RunID)
		var job, target string
		if err := f.pool.QueryRow(ctx, `SELECT j.state, t.state FROM runbook.targets t JOIN river_job j ON (j.args->>'target')::bigint = t.id WHERE t.id = $1`, tg.ID).Scan(&job, &target); err != nil {
			return err
		}
		seen = append(seen, fmt.Sprintf("call %d: in tx %d end record, outside %d end records, %d resumed, job %s, target %s",
			calls, inTx, final, resumed, job, target))
		if calls == 1 {
			return injected
		}
		return nil
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	st := f.wait(t, "commit")
	if st.State != StateDone || st.Counts[TargetSucceeded] != 3 {
		t.Fatalf("status %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	// The second call proves the first commit left nothing: its run has
	// no end record outside the (second) transaction, its job is still
	// running (retried) and the run was resumed.
	want := []string{
		"call 1: in tx 1 end record, outside 0 end records, 0 resumed, job running, target running",
		"call 2: in tx 1 end record, outside 0 end records, 1 resumed, job running, target running",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Fatalf("seen:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	ctx := context.Background()
	rows, err := f.pool.Query(ctx, `SELECT t.lock_key, t.run_id, t.attempts, j.state, j.attempt FROM runbook.targets t
		JOIN river_job j ON (j.args->>'target')::bigint = t.id WHERE t.campaign = (SELECT id FROM runbook.campaigns WHERE name = $1) ORDER BY t.line`, "commit")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		key, run, job         string
		attempts, jobAttempts int
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.key, &x.run, &x.attempts, &x.job, &x.jobAttempts)
	})
	if err != nil || len(got) != 3 {
		t.Fatalf("%d targets (%v)", len(got), err)
	}
	for _, r := range got {
		wantAttempts := 1
		if r.key == "host-h002" {
			wantAttempts = 2
		}
		if r.attempts != wantAttempts || r.jobAttempts != wantAttempts || r.job != "completed" {
			t.Errorf("%s: target attempts %d, job %s after %d attempts; want %d attempts, completed", r.key, r.attempts, r.job, r.jobAttempts, wantAttempts)
		}
		final, resumed := finalRecords(t, f.pool, r.run)
		if final != 1 || resumed != wantAttempts-1 {
			t.Errorf("%s: run %s has %d end records and %d resumptions, want 1 and %d", r.key, r.run, final, resumed, wantAttempts-1)
		}
		b, err := os.ReadFile(filepath.Join(effects, strings.TrimPrefix(r.key, "host-")+".effects"))
		if err != nil || string(b) != "once\n" {
			t.Errorf("%s: effects %q (%v), want the effect applied once", r.key, b, err)
		}
	}
	var locks int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM runbook.locks`).Scan(&locks); err != nil || locks != 0 {
		t.Errorf("%d locks left (%v)", locks, err)
	}
}

package campaign

import (
	"context"
	"testing"

	"github.com/runbookdev/runbook/engine/journal"
)

// TestRunIDFixedBeforeTheRun: a target's run id is recorded before its run
// starts, and the run gets that id; an attempt that died after recording it
// but before creating the run leaves an id the next attempt applies.
func TestRunIDFixedBeforeTheRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.start(t, "fixed", targetsCSV(3, nil), Spec{}); err != nil {
		t.Fatal(err)
	}
	// The attempt of line 2 died between admitting it and creating its run.
	dead := journal.NewID()
	if _, err := f.pool.Exec(ctx, `UPDATE runbook.targets SET state = 'running', run_id = $1, attempts = 1 WHERE lock_key = 'host-h002'`, dead); err != nil {
		t.Fatal(err)
	}
	f.worker(t, 2)
	st := f.wait(t, "fixed")
	if st.State != StateDone || st.Counts[TargetSucceeded] != 3 {
		t.Fatalf("status %+v", st)
	}
	rows, err := f.pool.Query(ctx, `SELECT lock_key, run_id FROM runbook.targets WHERE campaign = (SELECT id FROM runbook.campaigns WHERE name = 'fixed')`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var key, id string
		if err := rows.Scan(&key, &id); err != nil {
			t.Fatal(err)
		}
		n++
		if key == "host-h002" && id != dead {
			t.Errorf("the dead attempt's target ran as %s, want its fixed id %s", id, dead)
		}
		rs, err := f.db.Load(id)
		if err != nil || rs.State != journal.RunSucceeded {
			t.Errorf("run %s of %s: %v", id, key, err)
		}
	}
	if n != 3 {
		t.Fatalf("%d targets", n)
	}
	ids, _ := f.db.List()
	if len(ids) != 3 {
		t.Errorf("%d journaled runs, want 3", len(ids))
	}
}

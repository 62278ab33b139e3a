package synapse

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// TestMigrateRealisticDryRunRealUndo runs a dry run, a real run and its
// undo over generated data and compares the MAS database each time.
func TestMigrateRealisticDryRunRealUndo(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.conn(w.synURL)
	if err := generate(context.Background(), c, sizes{Users: 1000, Emails: 600, ExternalIDs: 100, Devices: 2000, AccessTokens: 3000, RefreshPairs: 200}); err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	start := w.state()

	size := func() string {
		return w.query(`SELECT sum(pg_relation_size(t::regclass))::text FROM unnest($1::text[]) t`, masTables)[0][0]
	}
	startSize := size()
	dry, dryRec, err := w.migrate(map[string]cty.Value{"dry_run": cty.True})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	diffState(t, "after dry run", start, w.state())
	// The load went into files truncated in the rolled-back transaction:
	// no dead rows are left behind for the real run to scan.
	if got := size(); got != startSize {
		t.Errorf("after the dry run the migrated tables take %s bytes, want %s as before", got, startSize)
	}
	if len(dry.UndoState) != 0 {
		t.Errorf("dry run returned undo state %q", dry.UndoState)
	}
	if !dry.Outputs.GetAttr("dry_run").True() {
		t.Errorf("dry_run output is false")
	}
	for _, e := range entities {
		if dryRec.progress[e] == 0 {
			t.Errorf("no progress reported for %s", e)
		}
	}

	real, _ := w.mustMigrate()
	for _, k := range []string{"migrated", "skipped", "written"} {
		if d := cmp.Diff(counts(t, dry, k), counts(t, real, k)); d != "" {
			t.Errorf("%s: dry run and real run differ (-dry +real):\n%s", k, d)
		}
	}
	after := w.state()
	if d := cmp.Diff(start.Constraints, after.Constraints); d != "" {
		t.Errorf("constraints after the real run differ:\n%s", d)
	}
	if d := cmp.Diff(start.Indexes, after.Indexes); d != "" {
		t.Errorf("indexes after the real run differ:\n%s", d)
	}
	for _, c := range after.Constraints {
		if !strings.HasSuffix(c, "valid=true") {
			t.Errorf("constraint not valid: %s", c)
		}
	}
	written := counts(t, real, "written")
	for table, n := range written {
		if after.Rows[table] != n {
			t.Errorf("table %s has %d rows, outputs say %d written", table, after.Rows[table], n)
		}
	}
	if after.Rows["users"] == 0 || after.Rows["compat_sessions"] == 0 || after.Rows["compat_refresh_tokens"] == 0 ||
		after.Rows["upstream_oauth_links"] == 0 || after.Rows["user_unsupported_third_party_ids"] == 0 {
		t.Errorf("some tables stayed empty: %v", after.Rows)
	}
	// Every compat session referenced by a token exists (the FK proves
	// it), and no session is left without a token or device.
	if got := w.query(`SELECT count(*) FROM compat_sessions s WHERE device_id IS NULL
AND NOT EXISTS (SELECT 1 FROM compat_access_tokens a WHERE a.compat_session_id = s.compat_session_id)`); got[0][0] != "0" {
		t.Errorf("%s deviceless sessions without a token", got[0][0])
	}

	if err := w.undo(real); err != nil {
		t.Fatalf("undo: %v", err)
	}
	diffState(t, "after undo", start, w.state())
}

// TestMigrateCheckpointResume: a run interrupted after its commit is
// resumed from its checkpoint instead of failing on a full database.
func TestMigrateCheckpointResume(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@a:example.com', 1600000000)`)
	res, rec := w.mustMigrate()
	if len(rec.checkpoints) != 1 {
		t.Fatalf("got %d checkpoints, want 1", len(rec.checkpoints))
	}
	var cp checkpoint
	if err := json.Unmarshal(rec.checkpoints[0], &cp); err != nil || !cp.Committing {
		t.Fatalf("checkpoint %s: %v", rec.checkpoints[0], err)
	}
	ctx := context.Background()
	again, err := sdk.Local(New()).Apply(ctx, "migrate", &sdk.ApplyRequest{Inputs: w.inputs(nil), Checkpoint: rec.checkpoints[0]}, &recorder{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if d := cmp.Diff(counts(t, res, "migrated"), counts(t, again, "migrated")); d != "" {
		t.Errorf("resumed outputs differ:\n%s", d)
	}
	if string(again.UndoState) != string(res.UndoState) {
		t.Errorf("resumed undo state %s, want %s", again.UndoState, res.UndoState)
	}
	// Without the checkpoint the full database is a conflict.
	_, _, err = w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "not empty")
}

func TestMigratePlan(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@a:example.com', 1), ('@b:example.com', 2)`)
	w.syn(`ANALYZE users`)
	start := w.state()
	p, err := sdk.Local(New()).Plan(context.Background(), "migrate", &sdk.PlanRequest{Inputs: w.inputs(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Summary, "~2 users") || p.Counts["add"] != 2 || len(p.Warnings) != 0 {
		t.Errorf("plan %+v", p)
	}
	diffState(t, "after plan", start, w.state())
	// Unknown inputs plan without touching anything.
	in := w.inputs(map[string]cty.Value{"mas_database_url": cty.UnknownVal(cty.String)})
	if p, err := sdk.Local(New()).Plan(context.Background(), "migrate", &sdk.PlanRequest{Inputs: in}); err != nil || p.Counts != nil {
		t.Errorf("plan with unknowns: %+v %v", p, err)
	}
}

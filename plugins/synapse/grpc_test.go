package synapse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestMigrateOverGRPC runs check, a dry run, a real run and its undo
// through the real plugin protocol.
func TestMigrateOverGRPC(t *testing.T) {
	t.Parallel()
	w := tokenWorld(t)
	prov := sdktest.GRPC(t, New())
	start := w.state()

	if _, _, err := sdktest.Apply(t, prov, "check", w.inputs(nil)); err != nil {
		t.Fatalf("check: %v", err)
	}
	dry, _, err := sdktest.Apply(t, prov, "migrate", w.inputs(map[string]cty.Value{"dry_run": cty.True}))
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	diffState(t, "after dry run", start, w.state())

	res, rec := sdktest.MustApply(t, prov, "migrate", w.inputs(nil))
	if d := cmp.Diff(counts(t, dry, "migrated"), counts(t, res, "migrated")); d != "" {
		t.Errorf("dry and real runs differ:\n%s", d)
	}
	if len(rec.ProgressEvents()) == 0 || len(rec.Checkpoints()) != 1 {
		t.Errorf("progress %d, checkpoints %d", len(rec.ProgressEvents()), len(rec.Checkpoints()))
	}
	if got := w.query(`SELECT count(*) FROM compat_refresh_tokens`); got[0][0] != "3" {
		t.Errorf("refresh tokens: %s", got[0][0])
	}
	if _, err := sdktest.Undo(t, prov, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), Outputs: res.Outputs, UndoState: res.UndoState}); err != nil {
		t.Fatalf("undo: %v", err)
	}
	diffState(t, "after undo", start, w.state())
}

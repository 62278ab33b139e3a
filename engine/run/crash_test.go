package run

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// undoRecorder is an action whose undo records what it was given and
// checkpoints once.
type undoRecorder struct {
	mu    sync.Mutex
	undos []sdk.UndoRequest // guarded by mu
}

func (a *undoRecorder) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "rec", Inputs: []sdk.Attribute{{Name: "id", Type: cty.String}},
		Capabilities: sdk.Capabilities{NativeUndo: true}}
}

func (a *undoRecorder) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{UndoState: []byte("u")}, nil
}

func (a *undoRecorder) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	a.mu.Lock()
	a.undos = append(a.undos, *req)
	a.mu.Unlock()
	return ev.Checkpoint([]byte("undo-cp"))
}

// crashedRun is the journal of a run whose engine died while step x was
// running: its start is journaled, with a checkpoint when cp is set, and no
// result.
func crashedRun(t *testing.T, cp string) *journal.State {
	t.Helper()
	in, err := journal.EncodeValue(cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal("x")}), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []*journal.Record{
		{Seq: 1, Type: journal.RecRunStarted, Meta: &journal.Meta{ID: "run"}},
		{Seq: 2, Type: journal.RecAttemptStarted, Step: "x", Attempt: 1, Inputs: in},
	}
	if cp != "" {
		recs = append(recs, &journal.Record{Seq: 3, Type: journal.RecCheckpoint, Step: "x", Attempt: 1, Checkpoint: journal.NewBlob([]byte(cp), false, nil)})
	}
	st := journal.Replay(recs)
	if st.Steps["x"].State != journal.StepRunning {
		t.Fatalf("x is %s, want running", st.Steps["x"].State)
	}
	return st
}

func rollbackCrashed(t *testing.T, src string, st *journal.State, w *world, rec *undoRecorder, j *memJournal) (*Result, error) {
	t.Helper()
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	provs := providers{"t": sdk.Local(&sdk.Plugin{Name: "t", Actions: []sdk.Action{&doAction{w}, &removeAction{w}, rec}})}
	return Rollback(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: "run"}), Options{RunID: "run", Providers: provs, Journal: j}, st)
}

// TestRollbackOfCrashedRun: a step the journal shows running is undone
// (native undo with its last checkpoint, or its rollback block), or, when
// nothing can tell its undo what it did, the rollback stops undoing
// nothing and says why.
func TestRollbackOfCrashedRun(t *testing.T) {
	const native = `step "t.rec" "x" {
  with     = { id = "x" }
  rollback = native
}`
	t.Run("native with checkpoint", func(t *testing.T) {
		rec, j := &undoRecorder{}, &memJournal{}
		res, err := rollbackCrashed(t, native, crashedRun(t, "cp-7"), newWorld(), rec, j)
		if err != nil || res.State != journal.RunRolledBack {
			t.Fatalf("%v %v", res, err)
		}
		if len(rec.undos) != 1 || string(rec.undos[0].Checkpoint) != "cp-7" {
			t.Fatalf("undos %+v, want one with checkpoint cp-7", rec.undos)
		}
	})
	t.Run("native without anything to go on", func(t *testing.T) {
		rec, j := &undoRecorder{}, &memJournal{}
		_, err := rollbackCrashed(t, native, crashedRun(t, ""), newWorld(), rec, j)
		var ue *UnknownOutcomeError
		if !errors.As(err, &ue) || !cmp.Equal(ue.Steps, []string{"x"}) {
			t.Fatalf("err %v, want UnknownOutcomeError for x", err)
		}
		if len(rec.undos) != 0 || len(j.recs) != 0 {
			t.Errorf("undid %d, journaled %d records; want nothing", len(rec.undos), len(j.recs))
		}
	})
	t.Run("rollback block", func(t *testing.T) {
		w := newWorld()
		w.applied["x"] = true
		src := `step "t.rec" "x" {
  with = { id = "x" }
  rollback {
    action = t.remove
    with   = { id = self.inputs.id }
  }
}`
		res, err := rollbackCrashed(t, src, crashedRun(t, ""), w, &undoRecorder{}, &memJournal{})
		if err != nil || res.State != journal.RunRolledBack {
			t.Fatalf("%v %v", res, err)
		}
		if got := w.snapshot(); len(got) != 0 {
			t.Errorf("left applied: %v", got)
		}
	})
}

// TestUndoCheckpointJournaled: a checkpoint sent during an undo is
// journaled durably (it used to be dropped).
func TestUndoCheckpointJournaled(t *testing.T) {
	rec, j := &undoRecorder{}, &memJournal{}
	src := `step "t.rec" "x" {
  with     = { id = "x" }
  rollback = native
}`
	res, err := rollbackCrashed(t, src, crashedRun(t, "cp"), newWorld(), rec, j)
	if err != nil || res.State != journal.RunRolledBack {
		t.Fatalf("%v %v", res, err)
	}
	recs, synced := j.records()
	for i, r := range recs {
		if r.Type == journal.RecUndoCheckpoint && r.Step == "x" {
			b, _ := r.Checkpoint.Bytes(nil)
			if string(b) != "undo-cp" || !synced[i] {
				t.Errorf("undo checkpoint %q synced %v", b, synced[i])
			}
			return
		}
	}
	t.Fatalf("no undo checkpoint journaled: %+v", recs)
}

// blockAction blocks until cancelled (at most 5 s); fastAction returns once
// the block action started.
type blockAction struct{ started, cancelled chan struct{} }

func (a *blockAction) Schema() sdk.ActionSchema { return sdk.ActionSchema{Name: "block"} }
func (a *blockAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	close(a.started)
	select {
	case <-ctx.Done():
		close(a.cancelled)
		return nil, ctx.Err()
	case <-time.After(5 * time.Second):
		return nil, nil
	}
}

type fastAction struct{ after chan struct{} }

func (fastAction) Schema() sdk.ActionSchema { return sdk.ActionSchema{Name: "fast"} }
func (a fastAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	<-a.after // the slow step is in flight
	return nil, nil
}

// TestJournalFailureCancelsInFlight: when the result of one step cannot be
// journaled, a step still running is cancelled and waited for, and Apply
// says why the run stopped.
func TestJournalFailureCancelsInFlight(t *testing.T) {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(`
step "t.block" "slow" {
}
step "t.fast" "quick" {
}`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ba := &blockAction{cancelled: make(chan struct{}), started: make(chan struct{})}
	provs := providers{"t": sdk.Local(&sdk.Plugin{Name: "t", Actions: []sdk.Action{ba, fastAction{after: ba.started}}})}
	j := &memJournal{failOn: func(r *journal.Record) bool { return r.Type == journal.RecStepSucceeded }}
	t0 := time.Now()
	_, err := Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: "run"}), Options{RunID: "run", Providers: provs, Journal: j})
	var je *JournalError
	if !errors.As(err, &je) {
		t.Fatalf("err %v, want a JournalError", err)
	}
	select {
	case <-ba.cancelled:
	default:
		t.Fatal("Apply returned before the step in flight was cancelled and had returned")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Apply took %s: the step in flight was not cancelled", d)
	}
}

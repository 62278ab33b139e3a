package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// memJournal keeps records in memory. From the failAt-th record on (1-based;
// 0 = never) every append fails, as on a full or broken disk. It remembers
// which records were synced (Append) and which were only queued.
type memJournal struct {
	mu     sync.Mutex
	recs   []*journal.Record // appended successfully; guarded by mu
	synced []bool            // per record: written with Append; guarded by mu
	n      int               // appends tried; guarded by mu
	failAt int
	// failOn, when set, picks the first record to fail instead of failAt.
	failOn  func(*journal.Record) bool
	failed  atomic.Bool // an append failed
	failure time.Time   // when; guarded by mu
}

var errDiskFull = errors.New("no space left on device")

func (j *memJournal) add(r *journal.Record, sync bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	if (j.failAt > 0 && j.n >= j.failAt) || j.failed.Load() || (j.failOn != nil && j.failOn(r)) {
		if !j.failed.Load() {
			j.failure = time.Now()
			j.failed.Store(true)
		}
		return errDiskFull
	}
	c := *r
	c.Seq = int64(len(j.recs) + 1)
	j.recs = append(j.recs, &c)
	j.synced = append(j.synced, sync)
	return nil
}

func (j *memJournal) Append(r *journal.Record) error       { return j.add(r, true) }
func (j *memJournal) AppendNoWait(r *journal.Record) error { return j.add(r, false) }
func (j *memJournal) Close() error                         { return nil }

func (j *memJournal) records() ([]*journal.Record, []bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]*journal.Record(nil), j.recs...), append([]bool(nil), j.synced...)
}

// startSynced reports whether the last start record (attempt_started or
// undo_started) of addr was synced.
func (j *memJournal) startSynced(addr string, undo bool) bool {
	recs, synced := j.records()
	typ := journal.RecAttemptStarted
	if undo {
		typ = journal.RecUndoStarted
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Step == addr && recs[i].Type == typ {
			return synced[i]
		}
	}
	return false
}

// probe wraps a provider: it checks at each call that the step's start was
// journaled durably before, and after a journal failure that the call is
// cancelled at once. It counts the calls in flight.
type probe struct {
	sdk.Provider
	j *memJournal
	t *testing.T

	inflight atomic.Int32
	calls    atomic.Int32
	late     atomic.Int32 // calls entered after the journal failed
}

func (p *probe) enter(ctx context.Context, key string, undo bool) func() {
	p.inflight.Add(1)
	p.calls.Add(1)
	// key is "<run>/<address>/<attempt>" or ".../undo-N".
	addr := key[strings.IndexByte(key, '/')+1 : strings.LastIndexByte(key, '/')]
	if !p.j.startSynced(addr, undo) {
		p.t.Errorf("plugin called for %s before its start was synced to the journal", addr)
	}
	if p.j.failed.Load() {
		p.late.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
			p.t.Errorf("call %s started after the journal failed and was not cancelled", key)
		}
	}
	return func() { p.inflight.Add(-1) }
}

func (p *probe) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	defer p.enter(ctx, req.IdempotencyKey, false)()
	return p.Provider.Apply(ctx, action, req, ev)
}

func (p *probe) Undo(ctx context.Context, action string, req *sdk.UndoRequest, ev sdk.Events) error {
	defer p.enter(ctx, req.IdempotencyKey, true)()
	return p.Provider.Undo(ctx, action, req, ev)
}

// slowAction applies effect `id` after a delay, or returns early when
// cancelled; if the journal failed more than 100 ms before the delay ended,
// the engine did not cancel it: an error.
type slowAction struct {
	doAction
	j *memJournal
	t *testing.T
}

func (a *slowAction) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
	}
	a.j.mu.Lock()
	late := a.j.failed.Load() && time.Since(a.j.failure) > 100*time.Millisecond
	a.j.mu.Unlock()
	if late {
		a.t.Errorf("a plugin call in flight when the journal failed was not cancelled")
	}
	return nil
}

func (a *slowAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	if err := a.wait(ctx); err != nil {
		return nil, err
	}
	return a.doAction.Apply(ctx, req, ev)
}

func (a *slowAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if err := a.wait(ctx); err != nil {
		return err
	}
	return a.doAction.Undo(ctx, req, ev)
}

const diamond = `
step "t.do" "a" {
  with     = { id = "a" }
  rollback = native
}
step "t.do" "b1" {
  with     = { id = "b1-${step.a.outputs.id}" }
  rollback = native
}
step "t.do" "b2" {
  with       = { id = "b2" }
  depends_on = [step.a]
  rollback   = native
}
step "t.do" "c" {
  with       = { id = "c" }
  depends_on = [step.b1, step.b2]
  rollback   = native
}
`

func runWithJournal(t *testing.T, src string, w *world, j *memJournal) (*Result, *probe, error) {
	t.Helper()
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	act := &slowAction{doAction: doAction{w}, j: j, t: t}
	p := &probe{Provider: sdk.Local(&sdk.Plugin{Name: "t", Actions: []sdk.Action{act, &removeAction{w}}}), j: j, t: t}
	res, err := Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: "run"}),
		Options{RunID: "run", Providers: providers{"t": p}, Journal: j, Sleep: func(context.Context, time.Duration) error { return nil }})
	return res, p, err
}

// TestJournalFailureStopsWork fails the journal at every record of a
// successful run and of a run that rolls back: the run ends with a
// JournalError, every plugin call in flight was cancelled and had returned
// by then, and no call started afterwards did anything.
func TestJournalFailureStopsWork(t *testing.T) {
	for _, failing := range []string{"", "c"} {
		w := newWorld()
		w.fail[failing] = failing != ""
		clean := &memJournal{}
		res, _, err := runWithJournal(t, diamond, w, clean)
		if err != nil {
			t.Fatal(err)
		}
		total := len(clean.recs)
		t.Logf("failing %q: %s, %d records", failing, res.State, total)
		for n := 1; n <= total; n++ {
			t.Run(fmt.Sprintf("fail=%s/N=%d", failing, n), func(t *testing.T) {
				w := newWorld()
				w.fail[failing] = failing != ""
				j := &memJournal{failAt: n}
				res, p, err := runWithJournal(t, diamond, w, j)
				var je *JournalError
				if !errors.As(err, &je) || !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "journal") {
					t.Fatalf("Apply = %v, %v; want a JournalError naming the failure", res, err)
				}
				if n := p.inflight.Load(); n != 0 {
					t.Errorf("%d plugin calls still running when Apply returned", n)
				}
				calls := p.calls.Load()
				time.Sleep(30 * time.Millisecond)
				if p.calls.Load() != calls {
					t.Errorf("a plugin call started after Apply returned")
				}
				if p.late.Load() > 0 {
					t.Logf("%d calls entered after the failure (cancelled)", p.late.Load())
				}
			})
		}
	}
}

// recordingAction records whether its step's start record was synced when
// it was called.
func TestStartDurableBeforeApply(t *testing.T) {
	j := &memJournal{}
	w := newWorld()
	res, p, err := runWithJournal(t, diamond, w, j)
	if err != nil || res.State != journal.RunSucceeded {
		t.Fatalf("%v %v", res, err)
	}
	if p.calls.Load() != 4 {
		t.Fatalf("%d calls, want 4", p.calls.Load())
	}
	// (probe fails the test for a call made before its start was synced.)
	recs, synced := j.records()
	for i, r := range recs {
		if r.Type == journal.RecAttemptStarted && !synced[i] {
			t.Errorf("attempt_started of %s was not synced", r.Step)
		}
	}
}

// TestUndoHonoursMaxConcurrency: an action declared one-at-a-time never
// has two undos running at once.
func TestUndoHonoursMaxConcurrency(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 6; i++ {
		fmt.Fprintf(&b, "step \"t.do\" \"s%d\" {\n  with     = { id = \"s%d\" }\n  rollback = native\n}\n", i, i)
	}
	b.WriteString("step \"t.do\" \"last\" {\n  with       = { id = \"last\" }\n  depends_on = [step.s0, step.s1, step.s2, step.s3, step.s4, step.s5]\n}\n")
	h := newHarness(t, b.String())
	h.w.delay = 10 * time.Millisecond
	h.w.actCap = 1
	h.w.fail["last"] = true
	if res := h.apply(context.Background(), nil, ""); res.State != journal.RunRolledBack {
		t.Fatalf("state %s: %v", res.State, res.Err)
	}
	if h.w.maxCur != 1 || h.w.maxUndo != 1 {
		t.Errorf("max concurrent applies %d, undos %d; want 1 and 1 (MaxConcurrency 1)", h.w.maxCur, h.w.maxUndo)
	}
}

// TestUnstorableInputsFailTheStep: inputs the journal cannot store (+Inf)
// fail the step as invalid before its plugin is called; the run rolls back
// normally and ends.
func TestUnstorableInputsFailTheStep(t *testing.T) {
	h := newHarness(t, diamond+`
step "t.do" "inf" {
  with       = { id = "inf", n = pow(10, 400) }
  depends_on = [step.b2]
}
`)
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunRolledBack {
		t.Fatalf("state %s: %v", res.State, res.Err)
	}
	var se *StepError
	if !errors.As(res.Err, &se) || se.Address != "inf" || se.Kind != sdk.KindInvalid {
		t.Fatalf("err %v, want an invalid failure of step inf", res.Err)
	}
	for _, e := range h.w.events() {
		if strings.Contains(e, "inf") {
			t.Errorf("the plugin was called for inf: %s", e)
		}
	}
	if got := h.w.snapshot(); len(got) != 0 {
		t.Errorf("not rolled back: %v", got)
	}
	_ = cty.NilVal
}

// TestClip: the message of a value too deep to journal is a few lines, not
// the 225 KB encoding/json makes of it.
func TestClip(t *testing.T) {
	long := "json: error calling MarshalJSON: " + strings.Repeat("x", 10000) + ": exceeded max depth"
	got := clip(long)
	if len(got) > 300 || !strings.HasSuffix(got, "exceeded max depth") || !strings.HasPrefix(got, "json: error") {
		t.Errorf("clip = %q (%d bytes)", got, len(got))
	}
	if clip("short") != "short" {
		t.Error("a short message changed")
	}
}

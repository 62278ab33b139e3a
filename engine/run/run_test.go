package run

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/sdk"
)

// fanout is a runbook of 10 steps (12 instances) with fan-out, fan-in and
// a for_each, each with an undo.
const fanout = `
variable "pw" {
  type      = string
  sensitive = true
  default   = "pw-canary-1234"
}
step "t.do" "a" {
  with     = { id = "a", secret = var.pw }
  rollback = native
}
step "t.do" "b1" {
  with     = { id = "b1-${step.a.outputs.id}" }
  rollback = native
}
step "t.do" "b2" {
  with     = { id = "b2" }
  depends_on = [step.a]
  rollback {
    action = t.remove
    with   = { id = self.inputs.id }
  }
}
step "t.do" "b3" {
  with       = { id = "b3" }
  depends_on = [step.a]
  rollback   = native
}
step "t.do" "c" {
  with       = { id = "c" }
  depends_on = [step.b1, step.b2]
  rollback   = native
}
step "t.do" "d" {
  with       = { id = "d" }
  depends_on = [step.b3]
  rollback   = native
}
step "t.do" "g" {
  for_each = toset(["x", "y", step.a.outputs.id])
  with     = { id = "g-${each.key}" }
  rollback = native
}
step "t.do" "e" {
  with       = { id = "e" }
  depends_on = [step.c, step.d]
  rollback   = native
}
step "t.do" "f" {
  with       = { id = "f" }
  depends_on = [step.e]
  rollback   = native
}
step "t.do" "h" {
  with       = { id = "h" }
  depends_on = [step.f, step.g]
  rollback   = native
}
output "b1" { value = step.b1.outputs.id }
`

type harness struct {
	t     *testing.T
	w     *world
	store *journal.LocalStore
	rec   *event.Recorder
	cfg   *lang.Config
	hook  func(event.Event)
	// parallelism for Apply (0 = default)
	parallelism int
}

func newHarness(t *testing.T, src string) *harness {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(src)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return &harness{t: t, w: newWorld(), store: journal.NewLocal(t.TempDir()), rec: &event.Recorder{}, cfg: cfg}
}

func (h *harness) scope(id string) *lang.Scope {
	vars, diags := h.cfg.ResolveVariables(lang.VarSources{})
	if diags.HasErrors() {
		h.t.Fatal(diags)
	}
	return &lang.Scope{Config: h.cfg, Vars: vars, RunID: id}
}

func (h *harness) apply(ctx context.Context, resume *journal.State, id string) *Result {
	h.t.Helper()
	var j journal.Journal
	var err error
	if resume == nil {
		meta := &journal.Meta{ID: id, Started: time.Now()}
		j, err = h.store.Create(meta)
		id = meta.ID
	} else {
		j, _, err = h.store.Open(id)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	defer j.Close()
	res, err := Apply(ctx, FromConfig(h.scope(id)), Options{RunID: id, Parallelism: h.parallelism, Providers: testProviders(h.w), Journal: j, Sink: event.Multi(h.rec, event.Func(func(e event.Event) {
		if h.hook != nil {
			h.hook(e)
		}
	})), Mask: mask.New(), Resume: resume,
		Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// deps of each step in fanout (direct).
var fanoutDeps = map[string][]string{
	"b1": {"a"}, "b2": {"a"}, "b3": {"a"}, "c": {"b1", "b2"}, "d": {"b3"}, "g": {"a"},
	"e": {"c", "d"}, "f": {"e"}, "h": {"f", "g"},
}

func effectStep(effect string) string {
	s := strings.TrimSuffix(effect, ".partial")
	switch {
	case strings.HasPrefix(s, "b1-"):
		return "b1"
	case strings.HasPrefix(s, "g-"):
		return "g"
	}
	return s
}

func TestSuccess(t *testing.T) {
	h := newHarness(t, fanout)
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunSucceeded {
		t.Fatalf("state %s: %v", res.State, res.Err)
	}
	want := []string{"a", "b1-a", "b2", "b3", "c", "d", "e", "f", "g-a", "g-x", "g-y", "h"}
	if d := cmp.Diff(want, h.w.snapshot()); d != "" {
		t.Fatalf("applied (-want +got):\n%s", d)
	}
	if got := RenderValue(res.Outputs["b1"]); got != "b1-a" {
		t.Errorf("output b1 = %v", got)
	}
}

// TestFaultInjection fails each step in turn and checks that everything
// is undone, in reverse dependency order, including the failed step's own
// partial effect.
func TestFaultInjection(t *testing.T) {
	for _, k := range []string{"a", "b1-a", "b2", "b3", "c", "d", "e", "f", "g-x", "g-a", "h"} {
		t.Run(k, func(t *testing.T) {
			h := newHarness(t, fanout)
			h.w.fail[k] = true
			res := h.apply(context.Background(), nil, "")
			if res.State != journal.RunRolledBack {
				t.Fatalf("state %s, want rolled_back (err %v)", res.State, res.Err)
			}
			if got := h.w.snapshot(); len(got) != 0 {
				t.Fatalf("final state not initial: %v still applied", got)
			}
			log := h.w.events()
			pos := map[string]int{}
			for i, e := range log {
				if strings.HasPrefix(e, "undo ") {
					pos[effectStep(strings.TrimPrefix(e, "undo "))] = i
				}
			}
			if _, ok := pos[effectStep(k)]; !ok {
				t.Errorf("partial effect of failed step %s not undone: %v", k, log)
			}
			for s, deps := range fanoutDeps {
				for _, d := range deps {
					ps, ok1 := pos[s]
					pd, ok2 := pos[d]
					if ok1 && ok2 && ps > pd {
						t.Errorf("undo of %s (at %d) ran after the undo of its dependency %s (at %d): %v", s, ps, d, pd, log)
					}
				}
			}
		})
	}
}

func TestRetryAndResume(t *testing.T) {
	h := newHarness(t, strings.Replace(fanout, `rollback   = native
}
step "t.do" "d"`, `rollback   = native
  retry {
    attempts = 3
  }
}
step "t.do" "d"`, 1))
	h.w.flaky["c"] = 2
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunSucceeded {
		t.Fatalf("state %s: %v", res.State, res.Err)
	}
	var retries int
	for _, e := range h.rec.Events() {
		if e.Type == event.StepRetry && e.Step == "c" {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("retries of c = %d, want 2", retries)
	}
}

func TestRetryNotRetryable(t *testing.T) {
	h := newHarness(t, fanout)
	h.w.fail["c"] = true
	h.apply(context.Background(), nil, "")
	for _, e := range h.rec.Events() {
		if e.Type == event.StepRetry {
			t.Fatalf("a non-retryable error was retried: %+v", e)
		}
	}
}

func TestInterruptAndResume(t *testing.T) {
	h := newHarness(t, fanout)
	h.w.delay = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	h.hook = func(e event.Event) {
		if e.Type == event.StepSucceeded {
			cancel()
		}
	}
	res := h.apply(ctx, nil, "")
	h.hook = nil
	if res.State != journal.RunInterrupted {
		t.Fatalf("state %s", res.State)
	}
	ids, _ := h.store.List()
	st, err := h.store.Load(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.State != journal.RunInterrupted {
		t.Fatalf("journaled state %s", st.State)
	}
	before := len(h.w.snapshot())
	h.w.delay = 0
	res = h.apply(context.Background(), st, ids[0])
	if res.State != journal.RunSucceeded {
		t.Fatalf("resume: %s %v", res.State, res.Err)
	}
	if len(h.w.snapshot()) != 12 || before == 12 {
		t.Fatalf("before %d after %v", before, h.w.snapshot())
	}
	reused := 0
	for _, in := range res.Instances {
		if in.Reused {
			reused++
		}
	}
	if reused == 0 {
		t.Errorf("resume reused nothing")
	}
	// Then roll the finished run back.
	j, st, _ := h.store.Open(ids[0])
	defer j.Close()
	rres, err := Rollback(context.Background(), FromConfig(h.scope(ids[0])), Options{RunID: ids[0], Providers: testProviders(h.w), Journal: j, Sink: h.rec}, st)
	if err != nil {
		t.Fatal(err)
	}
	if rres.State != journal.RunRolledBack || len(h.w.snapshot()) != 0 {
		t.Fatalf("rollback: %s, left %v", rres.State, h.w.snapshot())
	}
}

func TestUndoFailure(t *testing.T) {
	h := newHarness(t, fanout)
	h.w.fail["h"] = true
	h.w.undoErr["e"] = true
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunRollbackFailed {
		t.Fatalf("state %s", res.State)
	}
	// e's dependencies (c, d, b*, a) must not be undone; f and g are.
	got := h.w.snapshot()
	for _, want := range []string{"a", "c", "d", "e"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("%s was undone although the undo of e (which depends on it) failed: %v", want, got)
		}
	}
	for _, g := range got {
		if g == "f" || g == "h.partial" {
			t.Errorf("%s not undone", g)
		}
	}
}

func TestOnFailureContinueAndAbort(t *testing.T) {
	for _, tc := range []struct{ policy, state string }{{"continue", journal.RunFailed}, {"abort", journal.RunAborted}} {
		t.Run(tc.policy, func(t *testing.T) {
			src := strings.Replace(fanout, `with       = { id = "d" }`, `with       = { id = "d" }
  on_failure = "`+tc.policy+`"`, 1)
			h := newHarness(t, src)
			h.w.fail["d"] = true
			res := h.apply(context.Background(), nil, "")
			if res.State != tc.state {
				t.Fatalf("state %s, want %s", res.State, tc.state)
			}
			got := h.w.snapshot()
			has := func(s string) bool {
				for _, g := range got {
					if g == s {
						return true
					}
				}
				return false
			}
			if has("e") || has("h") {
				t.Errorf("dependents of the failed step ran: %v", got)
			}
			if tc.policy == "continue" && !has("c") {
				t.Errorf("continue: independent step c did not run: %v", got)
			}
		})
	}
}

func TestSecretsMasked(t *testing.T) {
	h := newHarness(t, fanout)
	h.w.fail["b2"] = true
	h.apply(context.Background(), nil, "")
	for _, e := range h.rec.Events() {
		if strings.Contains(e.Message+e.Error, "pw-canary-1234") {
			t.Fatalf("secret in event %+v", e)
		}
		if e.Type == event.StepSucceeded && e.Outputs["token"] != Sensitive {
			t.Errorf("sensitive output shown: %+v", e.Outputs)
		}
	}
	_ = cty.NilVal
}

func TestParallelismCap(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "step \"t.do\" \"s%d\" {\n  with = { id = \"s%d\" }\n}\n", i, i)
	}
	for _, tc := range []struct{ parallelism, actCap, want int }{{3, 0, 3}, {10, 2, 2}} {
		h := newHarness(t, b.String())
		h.w.delay = 10 * time.Millisecond
		h.w.actCap = tc.actCap
		h.parallelism = tc.parallelism
		if res := h.apply(context.Background(), nil, ""); res.State != journal.RunSucceeded {
			t.Fatalf("state %s", res.State)
		}
		if h.w.maxCur != tc.want {
			t.Errorf("parallelism %d, action cap %d: max concurrent attempts %d, want %d", tc.parallelism, tc.actCap, h.w.maxCur, tc.want)
		}
	}
}

func TestAlwaysStepRunsBeforeRollback(t *testing.T) {
	src := fanout + `
step "t.do" "cleanup" {
  with       = { id = "cleanup" }
  depends_on = [step.h]
  always     = true
}
`
	h := newHarness(t, src)
	h.w.fail["c"] = true
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunRolledBack {
		t.Fatalf("state %s", res.State)
	}
	log := h.w.events()
	ci, ui := -1, -1
	for i, e := range log {
		if e == "apply cleanup" {
			ci = i
		}
		if strings.HasPrefix(e, "undo ") && ui < 0 {
			ui = i
		}
	}
	if ci < 0 || ci > ui {
		t.Fatalf("always step did not run before the undos: %v", log)
	}
	// h never ran; d may have: dependents of c were not started.
	for _, e := range log {
		if e == "apply e" || e == "apply h" {
			t.Errorf("a dependent of the failed step ran: %v", log)
		}
	}
}

// TestResumeCheckpoint: an in-flight step is applied again on resume with
// the same idempotency key and its last checkpoint.
func TestResumeCheckpoint(t *testing.T) {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(`
step "l.long" "x" {
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	la := &longAction{started: make(chan struct{})}
	provs := providers{"l": sdk.Local(&sdk.Plugin{Name: "l", Actions: []sdk.Action{la}})}
	store := journal.NewLocal(t.TempDir())
	meta := &journal.Meta{Started: time.Now()}
	j, err := store.Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-la.started; cancel() }()
	sc := &lang.Scope{Config: cfg, RunID: meta.ID}
	res, err := Apply(ctx, FromConfig(sc), Options{RunID: meta.ID, Providers: provs, Journal: j})
	j.Close()
	if err != nil || res.State != journal.RunInterrupted {
		t.Fatalf("%v %+v", err, res)
	}
	j, st, err := store.Open(meta.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err = Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: meta.ID}), Options{RunID: meta.ID, Providers: provs, Journal: j, Resume: st})
	if err != nil || res.State != journal.RunSucceeded {
		t.Fatalf("resume: %v %+v", err, res)
	}
	want := meta.ID + "/x/1"
	if d := cmp.Diff([]string{want, want}, la.keys); d != "" {
		t.Errorf("idempotency keys (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"", "cp-2"}, la.cps); d != "" {
		t.Errorf("checkpoints (-want +got):\n%s", d)
	}
}

// TestRollbackRetry: after an undo failed, `runbook rollback` undoes what
// is left, the failed undo included.
func TestRollbackRetry(t *testing.T) {
	h := newHarness(t, fanout)
	h.w.fail["h"] = true
	h.w.undoErr["e"] = true
	if res := h.apply(context.Background(), nil, ""); res.State != journal.RunRollbackFailed {
		t.Fatalf("state %s", res.State)
	}
	h.w.undoErr["e"] = false
	ids, _ := h.store.List()
	j, st, err := h.store.Open(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, err := Rollback(context.Background(), FromConfig(h.scope(ids[0])), Options{RunID: ids[0], Providers: testProviders(h.w), Journal: j}, st)
	if err != nil {
		t.Fatal(err)
	}
	if res.State != journal.RunRolledBack || len(h.w.snapshot()) != 0 {
		t.Fatalf("state %s, left %v", res.State, h.w.snapshot())
	}
	// Nothing was undone twice.
	seen := map[string]bool{}
	for _, e := range h.w.events() {
		if strings.HasPrefix(e, "undo ") {
			if seen[e] {
				t.Errorf("%s twice", e)
			}
			seen[e] = true
		}
	}
}

// Roots are prepared only as slots free up. When a step fails, the roots
// not yet prepared never start: they end pending, and what ran is undone.
func TestFailureBeforeLaterRootsArePrepared(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(&b, "step \"t.do\" \"r%d\" {\n  with     = { id = \"r%d\" }\n  rollback = native\n}\n", i, i)
	}
	h := newHarness(t, b.String())
	h.parallelism = 1
	h.w.fail["r2"] = true
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunRolledBack {
		t.Fatalf("state %s, want rolled back", res.State)
	}
	// The two undos are independent of each other: any order.
	got := h.w.events()
	if len(got) == 4 {
		sort.Strings(got[2:])
	}
	want := []string{"apply r1", "apply r2.partial", "undo r1", "undo r2.partial"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("applies and undos (-want +got):\n%s", d)
	}
	if got := h.w.snapshot(); len(got) != 0 {
		t.Errorf("left applied: %v", got)
	}
	states := map[string]string{}
	for _, in := range res.Instances {
		states[in.Address] = in.State
	}
	for _, a := range []string{"r3", "r4", "r5", "r6"} {
		if states[a] != journal.StepPending {
			t.Errorf("%s ended %s, want pending", a, states[a])
		}
	}
}

// quietSink records events but does not show step outputs.
type quietSink struct{ event.Recorder }

func (*quietSink) ShowsOutputs() bool { return false }

// Step outputs are rendered into events only for sinks that show them.
func TestOutputsRenderedOnlyWhenShown(t *testing.T) {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte("step \"t.do\" \"a\" {\n  with = { id = \"a\" }\n}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	loud, quiet := &event.Recorder{}, &quietSink{}
	for _, sink := range []event.Sink{loud, quiet} {
		store := journal.NewLocal(t.TempDir())
		meta := &journal.Meta{Started: time.Now()}
		j, err := store.Create(meta)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: meta.ID}),
			Options{RunID: meta.ID, Providers: testProviders(newWorld()), Journal: j, Sink: sink})
		j.Close()
		if err != nil || res.State != journal.RunSucceeded {
			t.Fatalf("%v %v", err, res)
		}
	}
	succeeded := func(evs []event.Event) event.Event {
		for _, e := range evs {
			if e.Type == event.StepSucceeded {
				return e
			}
		}
		t.Fatal("no step_succeeded event")
		return event.Event{}
	}
	if e := succeeded(loud.Events()); e.Outputs["id"] != "a" {
		t.Errorf("a sink that shows outputs got %v", e.Outputs)
	}
	if e := succeeded(quiet.Events()); e.Outputs != nil {
		t.Errorf("a sink that does not show outputs got %v", e.Outputs)
	}
}

// A step nothing else refers to still gives the runbook's outputs its value
// (the walk keeps only the values dependents read).
func TestOutputOfStepWithoutDependents(t *testing.T) {
	h := newHarness(t, `step "t.do" "a" {
  with = { id = "a" }
}
step "t.do" "b" {
  with = { id = "b" }
}
output "a_id" {
  value = step.a.outputs.id
}`)
	res := h.apply(context.Background(), nil, "")
	if res.State != journal.RunSucceeded {
		t.Fatalf("state %s: %v", res.State, res.Err)
	}
	if got := RenderValue(res.Outputs["a_id"]); got != "a" {
		t.Errorf("output a_id = %v, want a", got)
	}
}

package rbtest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
)

// Event is a test event, shaped like `go test -json`'s: Action is "run"
// (a test starts), "output" (a line of its report), "pass", "fail" or
// "skip" (it ended, with Elapsed seconds).
type Event struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	File    string    `json:"file"`
	Test    string    `json:"test,omitempty"`
	Output  string    `json:"output,omitempty"`
	Elapsed float64   `json:"elapsed,omitempty"`
}

// Result is the outcome of one test: a run block or a sweep.
type Result struct {
	File string
	// Name is "run.NAME", "sweep.fail" or "sweep.crash".
	Name string
	// Failures say what went wrong, one line each; none when it passed.
	Failures []string
	// Lines are the test's report (a sweep's table).
	Lines []string
	// Rows are a sweep's rows.
	Rows     []SweepRow `json:"-"`
	Duration time.Duration
	// Error is set when the test could not run (not a failed check).
	Error string
}

// Passed reports whether the test passed.
func (r *Result) Passed() bool { return len(r.Failures) == 0 && r.Error == "" }

// Run runs every test of the suite: its run blocks, then the sweeps the
// file asks for and those in sweeps (from the command line), each once.
func (s *Suite) Run(ctx context.Context, sweeps ...string) []*Result {
	var out []*Result
	for _, r := range s.File.Runs {
		if s.opts.Match != nil && !s.opts.Match("run."+r.Name) {
			continue
		}
		out = append(out, s.test(ctx, "run."+r.Name, func(ctx context.Context, res *Result) { s.runBlock(ctx, r, res) }))
	}
	seen := map[string]bool{}
	for _, m := range append(append([]string(nil), s.File.Sweeps...), sweeps...) {
		if seen[m] || s.opts.Match != nil && !s.opts.Match("sweep."+m) {
			continue
		}
		seen[m] = true
		mode := m
		out = append(out, s.test(ctx, "sweep."+mode, func(ctx context.Context, res *Result) { s.sweep(ctx, mode, res) }))
	}
	return out
}

// test runs one test with its timeout and reports its events.
func (s *Suite) test(ctx context.Context, name string, f func(context.Context, *Result)) *Result {
	res := &Result{File: s.File.Path, Name: name}
	s.event(Event{Action: "run", Test: name})
	timeout := s.opts.Timeout
	if s.File.Timeout > 0 {
		timeout = s.File.Timeout
	}
	tctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		tctx, cancel = context.WithTimeout(ctx, timeout)
	}
	s.File.cleanTempDir()
	start := time.Now()
	f(tctx, res)
	if tctx.Err() != nil && ctx.Err() == nil && res.Error == "" {
		res.Error = fmt.Sprintf("timed out after %s", timeout)
	}
	cancel()
	res.Duration = time.Since(start)
	for _, l := range res.Lines {
		s.event(Event{Action: "output", Test: name, Output: l})
	}
	for _, l := range res.Failures {
		s.event(Event{Action: "output", Test: name, Output: "FAIL: " + l})
	}
	if res.Error != "" {
		s.event(Event{Action: "output", Test: name, Output: "ERROR: " + res.Error})
	}
	act := "pass"
	if !res.Passed() {
		act = "fail"
	}
	s.event(Event{Action: act, Test: name, Elapsed: res.Duration.Seconds()})
	return res
}

func (s *Suite) event(ev Event) {
	if s.opts.OnEvent == nil {
		return
	}
	ev.Time = time.Now().UTC()
	ev.File = s.File.Path
	s.opts.OnEvent(ev)
}

// runBlock applies the runbook with the run's variables and mocks and
// checks the expected state and the assertions.
func (s *Suite) runBlock(ctx context.Context, r *Run, res *Result) {
	dir, done, err := tempDir()
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer done()
	x := s.newExecution(dir, s.runVars[r.Name], append(append([]*Mock(nil), r.Mocks...), s.File.Mocks...))
	if err := x.apply(ctx, s); err != nil {
		res.Error = err.Error()
		return
	}
	if x.res.State != r.Expect {
		msg := fmt.Sprintf("%s: the run ended %s, expected %s", rangeLine(r.DeclRange), x.res.State, r.Expect)
		if x.res.Err != nil {
			msg += ": " + x.res.Err.Error()
		}
		res.Failures = append(res.Failures, msg)
	}
	ctxv := s.evalContext(x)
	for _, a := range r.Asserts {
		if f := s.check(a, ctxv); f != "" {
			res.Failures = append(res.Failures, f)
		}
	}
}

func rangeLine(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

// check evaluates one assert: "" when it holds, else what failed.
func (s *Suite) check(a *Assert, ctx *hcl.EvalContext) string {
	src := strings.TrimSpace(string(a.Condition.Range().SliceBytes(s.File.file.Bytes)))
	v, diags := a.Condition.Value(ctx)
	if diags.HasErrors() {
		return fmt.Sprintf("%s: condition %s cannot be evaluated: %s", rangeLine(a.Condition.Range()), src, diagText(diags))
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
		return fmt.Sprintf("%s: condition %s is not a bool", rangeLine(a.Condition.Range()), src)
	}
	if v.True() {
		return ""
	}
	msg := "assertion failed"
	if a.ErrorMessage != nil {
		if m, d := a.ErrorMessage.Value(ctx); !d.HasErrors() {
			if m, err := convert.Convert(m, cty.String); err == nil && !m.IsNull() && m.IsWhollyKnown() {
				if m.IsMarked() {
					msg = "(the error message is sensitive)"
				} else {
					msg = m.AsString()
				}
			}
		}
	}
	return fmt.Sprintf("%s: %s (condition: %s)", rangeLine(a.Condition.Range()), msg, src)
}

func diagText(d hcl.Diagnostics) string {
	var parts []string
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			parts = append(parts, strings.TrimSuffix(x.Summary+": "+x.Detail, ": "))
		}
	}
	return strings.Join(parts, "; ")
}

// evalContext is what assert conditions see: var.*, step.NAME (inputs,
// outputs, state, attempts; a for_each step is an object of its
// instances by key), run.* (state, error, outputs, undo_order, applied,
// events, effects) and the language's functions.
func (s *Suite) evalContext(x *execution) *hcl.EvalContext {
	steps := map[string]cty.Value{}
	byStep := map[string]map[string]cty.Value{}
	for _, in := range x.res.Instances {
		v := cty.ObjectVal(map[string]cty.Value{
			"inputs": plain(in.Inputs), "outputs": plain(in.Outputs),
			"state": cty.StringVal(in.State), "attempts": cty.NumberIntVal(int64(in.Attempt)),
		})
		if in.Key.Key == cty.NilVal {
			steps[in.Step.Name] = v
			continue
		}
		if byStep[in.Step.Name] == nil {
			byStep[in.Step.Name] = map[string]cty.Value{}
		}
		k, _ := in.Key.Key.Unmark()
		byStep[in.Step.Name][k.AsString()] = v
	}
	for name, m := range byStep {
		steps[name] = cty.ObjectVal(m)
	}
	for _, name := range s.Config.StepOrder {
		if _, ok := steps[name]; !ok {
			steps[name] = cty.ObjectVal(map[string]cty.Value{"inputs": cty.NullVal(cty.DynamicPseudoType),
				"outputs": cty.NullVal(cty.DynamicPseudoType), "state": cty.StringVal(journal.StepPending), "attempts": cty.NumberIntVal(0)})
		}
	}
	vars := map[string]cty.Value{}
	for k, v := range x.vars {
		vars[k] = plain(v)
	}
	outs := map[string]cty.Value{}
	for k, v := range x.res.Outputs {
		outs[k] = plain(v)
	}
	var undone, applied, effects, events []cty.Value
	for _, e := range x.rec.Effects() {
		if e.Err == "" {
			if e.Op == "undo" {
				undone = append(undone, cty.StringVal(e.Step))
			} else {
				applied = append(applied, cty.StringVal(e.Step))
			}
		}
		effects = append(effects, cty.ObjectVal(map[string]cty.Value{
			"op": cty.StringVal(e.Op), "step": cty.StringVal(e.Step), "action": cty.StringVal(e.Action),
			"inputs": plain(e.Inputs), "mocked": cty.BoolVal(e.Mocked), "error": cty.StringVal(e.Err),
		}))
	}
	for _, ev := range x.Events() {
		events = append(events, cty.ObjectVal(map[string]cty.Value{
			"type": cty.StringVal(string(ev.Type)), "step": cty.StringVal(ev.Step), "message": cty.StringVal(ev.Message),
			"error": cty.StringVal(ev.Error), "kind": cty.StringVal(ev.Kind),
		}))
	}
	errText := ""
	if x.res.Err != nil {
		errText = x.res.Err.Error()
	}
	runv := cty.ObjectVal(map[string]cty.Value{
		"state": cty.StringVal(x.res.State), "error": cty.StringVal(errText), "outputs": cty.ObjectVal(outs),
		"undo_order": list(undone), "applied": list(applied), "effects": list(effects), "events": list(events),
	})
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "step": cty.ObjectVal(steps), "run": runv},
		Functions: lang.Functions(s.Config.BaseDir),
	}
}

// list is a tuple of vs (of possibly different types), empty when none.
func list(vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.EmptyTupleVal
	}
	return cty.TupleVal(vs)
}

// plain is v, null for a missing value. Sensitive marks stay: a
// condition may use a secret, an error message may not show it.
func plain(v cty.Value) cty.Value {
	if v == cty.NilVal {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v
}

// instancesByAddr indexes a result's instances.
func instancesByAddr(res *run.Result) map[string]*run.Instance {
	out := map[string]*run.Instance{}
	for _, in := range res.Instances {
		out[in.Address] = in
	}
	return out
}

// sortedKeys of a set.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errString is err's text, "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	var se *run.StepError
	if errors.As(err, &se) {
		return se.Error()
	}
	return err.Error()
}

var _ event.Sink = (*execution)(nil)

package rbtest

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/sdk"
)

// SweepRow is what one failure point of a sweep did.
type SweepRow struct {
	// Step is the step address failed (or crashed) on purpose.
	Step string
	// Undone lists the steps undone, in the order they were undone.
	Undone []string
	// Left lists the irreversible steps whose effects stay (reported,
	// not a failure).
	Left []string
	// Problems say why the row fails; none when it passed.
	Problems []string
}

// Verdict is "ok" or "FAIL".
func (r SweepRow) Verdict() string {
	if len(r.Problems) == 0 {
		return "ok"
	}
	return "FAIL"
}

// NoFailure is the step of a sweep's first row: the run succeeded and
// was rolled back as a whole.
const NoFailure = "(none: rollback after success)"

// defaultFailKind is the kind of error a swept step fails with when its
// mock names none.
const defaultFailKind = sdk.KindConflict

// sweep applies the runbook once with the file's mocks (it must succeed),
// then once per step instance that ran, failing it (mode fail) or
// crashing the engine there, resuming and rolling back (mode crash), and
// checks each time that everything done was put back.
func (s *Suite) sweep(ctx context.Context, mode string, res *Result) {
	dir, done, err := tempDir()
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer done()
	base := s.newExecution(dir, s.vars, s.File.Mocks)
	if err := base.apply(ctx, s); err != nil {
		res.Error = "the run without failures: " + err.Error()
		return
	}
	if base.res.State != journal.RunSucceeded {
		res.Error = fmt.Sprintf("the run without failures ended %s, not succeeded: %s (give the file mocks and variables that make it succeed)",
			base.res.State, errString(base.res.Err))
		return
	}
	var targets []string
	for _, e := range base.rec.Effects() {
		if e.Op == "apply" && e.Err == "" && !contains(targets, e.Step) {
			targets = append(targets, e.Step)
		}
	}
	// The first row: `runbook rollback` of the run that succeeded, which
	// also puts the world back for the rows that follow.
	first := SweepRow{Step: NoFailure}
	if err := base.rollback(ctx, s); err != nil {
		first.Problems = append(first.Problems, "`runbook rollback` of the run that succeeded broke: "+err.Error())
	} else {
		s.checkRolledBack(&first, base)
	}
	res.Rows = append(res.Rows, first)
	for _, p := range first.Problems {
		res.Failures = append(res.Failures, fmt.Sprintf("rollback after success: %s", p))
	}
	for _, addr := range targets {
		if ctx.Err() != nil {
			return
		}
		var row SweepRow
		if mode == SweepCrash {
			row = s.crashAt(ctx, dir, addr)
		} else {
			row = s.failAt(ctx, dir, addr)
		}
		res.Rows = append(res.Rows, row)
		for _, p := range row.Problems {
			res.Failures = append(res.Failures, fmt.Sprintf("%s at step %s: %s", sweepVerb(mode), addr, p))
		}
	}
	res.Lines = sweepTable(mode, res.Rows)
}

func sweepVerb(mode string) string {
	if mode == SweepCrash {
		return "crash"
	}
	return "failure"
}

// failAt applies the runbook failing addr, then (when the step's
// on_failure did not roll back) rolls the run back as an operator would,
// and checks the outcome.
func (s *Suite) failAt(ctx context.Context, dir, addr string) SweepRow {
	row := SweepRow{Step: addr}
	x := s.newExecution(dir, s.vars, s.File.Mocks)
	x.rec.failAt, x.rec.failKind = addr, defaultFailKind
	if err := x.apply(ctx, s); err != nil {
		row.Problems = append(row.Problems, "the run broke: "+err.Error())
		return row
	}
	applied := x.res
	s.checkAlways(&row, applied.Instances, x)
	switch applied.State {
	case journal.RunRolledBack, journal.RunRollbackFailed:
	case journal.RunFailed, journal.RunAborted:
		// on_failure = continue or abort: what `runbook rollback` does next.
		if err := x.rollback(ctx, s); err != nil {
			row.Problems = append(row.Problems, "`runbook rollback` after the failure broke: "+err.Error())
			return row
		}
	default:
		row.Problems = append(row.Problems, fmt.Sprintf("the run ended %s although step %s failed", applied.State, addr))
		return row
	}
	s.checkRolledBack(&row, x)
	return row
}

// crashAt applies the runbook, crashing the engine once addr's call did
// its work (the journal ends there as a crash leaves it), resumes the run
// from the journal, rolls it back and checks the outcome.
func (s *Suite) crashAt(ctx context.Context, dir, addr string) SweepRow {
	row := SweepRow{Step: addr}
	x := s.newExecution(dir, s.vars, s.File.Mocks)
	x.rec.crashAt = addr
	if err := x.apply(ctx, s); err != nil {
		row.Problems = append(row.Problems, "the run broke: "+err.Error())
		return row
	}
	if ctx.Err() != nil {
		return row
	}
	if err := x.resume(ctx, s); err != nil {
		row.Problems = append(row.Problems, "`runbook resume` after the crash broke: "+err.Error())
		return row
	}
	if x.res.State != journal.RunSucceeded {
		row.Problems = append(row.Problems, fmt.Sprintf("`runbook resume` after the crash ended %s: %s", x.res.State, errString(x.res.Err)))
		return row
	}
	if err := x.rollback(ctx, s); err != nil {
		row.Problems = append(row.Problems, "`runbook rollback` after the resume broke: "+err.Error())
		return row
	}
	s.checkRolledBack(&row, x)
	return row
}

// checkAlways: every `always` step ran (or was skipped by its own
// condition).
func (s *Suite) checkAlways(row *SweepRow, insts []*run.Instance, x *execution) {
	ran := map[string]bool{}
	for _, e := range x.rec.Effects() {
		if e.Op == "apply" {
			ran[stepName(e.Step)] = true
		}
	}
	for _, in := range insts {
		if in.State == journal.StepSkipped && skippedByCondition(x, in.Address) {
			ran[in.Step.Name] = true
		}
	}
	for _, name := range s.Config.StepOrder {
		st := s.Config.Steps[name]
		if st.Always && !ran[name] {
			row.Problems = append(row.Problems, fmt.Sprintf("always step %s did not run", name))
		}
	}
}

// skippedByCondition: the step_skipped event of addr says its `when` was
// false.
func skippedByCondition(x *execution, addr string) bool {
	for _, ev := range x.Events() {
		if ev.Step == addr && ev.Type == "step_skipped" && strings.Contains(ev.Message, "condition") {
			return true
		}
	}
	return false
}

// checkRolledBack checks a run that was rolled back: it ended rolled_back,
// every reversible step that acted was undone after the steps depending on
// it, and the providers' effects net to nothing but irreversible steps'.
func (s *Suite) checkRolledBack(row *SweepRow, x *execution) {
	res := x.res
	insts := instancesByAddr(res)
	var failedUndos []string
	for _, in := range res.Instances {
		if in.State == journal.StepUndoFailed {
			failedUndos = append(failedUndos, in.Address)
			row.Problems = append(row.Problems, fmt.Sprintf("the undo of step %s failed: %s", in.Address, undoErr(x, in.Address)))
		}
	}
	if res.State != journal.RunRolledBack && len(row.Problems) == 0 {
		row.Problems = append(row.Problems, fmt.Sprintf("the rollback ended %s: %s", res.State, errString(res.Err)))
	}
	// Net effects per step address: applied and not undone since.
	effects := x.rec.Effects()
	live := map[string]bool{}
	undoAt := map[string][2]int{} // address -> start, end of its successful undo
	for _, e := range effects {
		if e.Err != "" {
			continue
		}
		switch e.Op {
		case "apply":
			live[e.Step] = true
		case "undo":
			if !live[e.Step] {
				row.Problems = append(row.Problems, fmt.Sprintf("step %s was undone but had not acted", e.Step))
			}
			delete(live, e.Step)
			undoAt[e.Step] = [2]int{e.Start, e.End}
			row.Undone = append(row.Undone, e.Step)
		}
	}
	for _, addr := range sortedKeys(live) {
		in := insts[addr]
		if in == nil {
			row.Problems = append(row.Problems, fmt.Sprintf("step %s acted but the run does not know it", addr))
			continue
		}
		switch s.kindOf(in.Step, in.Inputs) {
		case lang.ReadOnly:
		case lang.Reversible:
			switch {
			case in.State == journal.StepUndoFailed:
			case len(failedUndos) > 0:
				row.Problems = append(row.Problems, fmt.Sprintf("step %s is reversible and acted, but was not undone: the failed undo of %s blocks it", addr, strings.Join(failedUndos, ", ")))
			default:
				row.Problems = append(row.Problems, fmt.Sprintf("step %s is reversible and acted, but was not undone (state %s)", addr, in.State))
			}
		default:
			row.Left = append(row.Left, addr)
			if s.nativeUndo(in.Step) {
				row.Problems = append(row.Problems, fmt.Sprintf("step %s (%s.%s) has no rollback, so what it did stays, though its action can undo it: add `rollback = native`",
					addr, in.Step.Plugin, in.Step.Action))
			}
		}
	}
	// Reverse order: a step is undone only once every step depending on
	// it was.
	for a, ta := range undoAt {
		for b, tb := range undoAt {
			if a != b && s.dependsOn(stepName(b), stepName(a)) && tb[1] > ta[0] {
				row.Problems = append(row.Problems, fmt.Sprintf("step %s was undone before step %s, which depends on it", a, b))
			}
		}
	}
	if len(s.File.Restored) > 0 {
		ctx := s.evalContext(x)
		for _, a := range s.File.Restored {
			if f := s.check(a, ctx); f != "" {
				row.Problems = append(row.Problems, "not restored: "+f)
			}
		}
	}
}

// undoErr is the error of the failed undo of addr.
func undoErr(x *execution, addr string) string {
	for _, ev := range x.Events() {
		if ev.Step == addr && ev.Type == "undo_failed" {
			if ev.Kind != "" {
				return ev.Kind + ": " + ev.Error
			}
			return ev.Error
		}
	}
	return "(no error reported)"
}

// dependsOn: step a depends on step b, directly or not.
func (s *Suite) dependsOn(a, b string) bool {
	seen := map[string]bool{}
	var walk func(n string) bool
	walk = func(n string) bool {
		st := s.Config.Steps[n]
		if st == nil || seen[n] {
			return false
		}
		seen[n] = true
		for _, d := range st.Deps {
			if d == b || walk(d) {
				return true
			}
		}
		return false
	}
	return walk(a)
}

// stepName is the step of an address: `sync["a"]` -> sync.
func stepName(addr string) string {
	n, _, _ := strings.Cut(addr, "[")
	return n
}

// sweepTable renders the rows as an aligned table.
func sweepTable(mode string, rows []SweepRow) []string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	what := "FAILED STEP"
	if mode == SweepCrash {
		what = "CRASHED AT"
	}
	fmt.Fprintf(tw, "%s\tUNDONE (IN ORDER)\tLEFT (IRREVERSIBLE)\tVERDICT\n", what)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Step, orDash(r.Undone), orDash(r.Left), r.Verdict())
	}
	tw.Flush()
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

func orDash(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ", ")
}

package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/sdk"
)

// undoRunbook: conf (native undo) <- mark (a rollback action that plans) and conf <-
// stamp (no rollback: irreversible); check is read-only.
const undoRunbook = `
variable "dir" { type = string }
step "core.file" "conf" {
  with     = { path = "${var.dir}/conf", content = "v1" }
  rollback = native
}
step "core.exec" "mark" {
  with       = { command = "true" }
  depends_on = [step.conf]
  rollback {
    action = core.file
    with   = { path = "${var.dir}/undone", content = "x" }
  }
}
step "core.exec" "stamp" {
  with       = { command = "true" }
  depends_on = [step.conf]
}
step "core.sleep" "check" {
  with       = { duration = "0s" }
  depends_on = [step.mark, step.stamp]
}
`

func TestRollbackShowsTheUndoPlanAndAsks(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, undoRunbook)
	s := newSession(t, dir, nil)
	out, err := applier(t, s, dir, main)()
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunSucceeded {
		t.Fatalf("apply: %s (%v)", out.Result.State, out.Result.Err)
	}
	want := &UndoPlan{
		RunID: out.RunID, Dir: dir, State: journal.RunSucceeded,
		Levels: [][]*PlannedUndo{
			{{Address: "mark", State: journal.StepSucceeded, Undo: "rollback: core.file", Preview: &run.UndoPreview{
				Plan: &sdk.PlanResult{Summary: "create " + filepath.Join(dir, "undone"), Counts: map[string]int64{"create": 1}}}}},
			{{Address: "conf", State: journal.StepSucceeded, Undo: "native undo"}},
		},
		Irreversible: []string{"stamp"},
	}
	var got *UndoPlan
	_, err = s.Rollback(context.Background(), out.RunID, vars(), RollbackOptions{Preview: true, Confirm: func(p *UndoPlan) (bool, error) {
		got = p
		return false, nil
	}})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("refused rollback = %v, want ErrCancelled", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("undo plan (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "conf")); err != nil || string(b) != "v1" {
		t.Fatalf("a refused rollback undid conf: %q, %v", b, err)
	}
	if r, err := s.Run(out.RunID); err != nil || r.State.State != journal.RunSucceeded {
		t.Fatalf("after a refused rollback the run is %+v, %v", r, err)
	}

	back, err := s.Rollback(context.Background(), out.RunID, vars(), RollbackOptions{Confirm: func(p *UndoPlan) (bool, error) { return true, nil }})
	if err != nil {
		fatal(t, err)
	}
	if back.Result.State != journal.RunRolledBack {
		t.Fatalf("rollback: %s (%v)", back.Result.State, back.Result.Err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf")); !os.IsNotExist(err) {
		t.Fatalf("conf still there: %v", err)
	}
}

// TestRollbackPicksTheRunOfTheRunbookHere: two runbooks share one state
// directory; without RUN, rollback in one's directory picks that
// runbook's latest run, not the newer run of the other, and says so.
func TestRollbackPicksTheRunOfTheRunbookHere(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "main.hcl"), strings.ReplaceAll(undoRunbook, `"${var.dir}/conf"`, `"${var.dir}/conf-`+filepath.Base(d)+`"`))
	}
	s := newSession(t, root, nil) // state in root/.runbook
	outA, err := applier(t, s, root, filepath.Join(a, "main.hcl"))()
	if err != nil {
		fatal(t, err)
	}
	outB, err := applier(t, s, root, filepath.Join(b, "main.hcl"))()
	if err != nil {
		fatal(t, err)
	}
	if outA.Result.State != journal.RunSucceeded || outB.Result.State != journal.RunSucceeded {
		t.Fatalf("applies: %s, %s", outA.Result.State, outB.Result.State)
	}

	t.Chdir(a)
	var picked *UndoPlan
	back, err := s.Rollback(context.Background(), "", vars(), RollbackOptions{Confirm: func(p *UndoPlan) (bool, error) {
		picked = p
		return true, nil
	}})
	if err != nil {
		fatal(t, err)
	}
	if back.RunID != outA.RunID || picked == nil || !picked.Picked || !picked.Here || picked.RunID != outA.RunID {
		t.Fatalf("rollback in %s picked %s (plan %+v), want the run of its runbook %s (not %s)", a, back.RunID, picked, outA.RunID, outB.RunID)
	}
	if l := picked.Levels; len(l) == 0 || l[0][0].Preview != nil {
		t.Errorf("without Preview the plan asked the plugins: %+v", l)
	}
	if _, err := os.Stat(filepath.Join(root, "conf-a")); !os.IsNotExist(err) {
		t.Errorf("conf-a still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "conf-b")); err != nil {
		t.Errorf("the other runbook's run was undone: %v", err)
	}

	// A directory with a runbook that never ran: no run to pick.
	c := filepath.Join(root, "c")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(c, "main.hcl"), undoRunbook)
	t.Chdir(c)
	if _, err := s.Rollback(context.Background(), "", vars(), RollbackOptions{}); err == nil || !strings.Contains(err.Error(), "no run of the runbook in") {
		t.Fatalf("rollback where the runbook never ran: %v", err)
	}

	// Without a runbook in the working directory: the latest run.
	t.Chdir(root)
	back, err = s.Rollback(context.Background(), "", vars(), RollbackOptions{Confirm: func(p *UndoPlan) (bool, error) {
		picked = p
		return true, nil
	}})
	if err != nil {
		fatal(t, err)
	}
	if back.RunID != outB.RunID || !picked.Picked || picked.Here {
		t.Fatalf("rollback without a runbook here picked %s, want the latest run %s", back.RunID, outB.RunID)
	}
}

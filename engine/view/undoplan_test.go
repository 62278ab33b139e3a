package view

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/sdk"
)

func TestWriteUndoPlan(t *testing.T) {
	tests := []struct {
		name string
		plan *session.UndoPlan
		want string
	}{
		{"levels and irreversible", &session.UndoPlan{
			RunID: "01RUN", State: "failed",
			Levels: [][]*session.PlannedUndo{
				{{Address: `db["a"]`, State: "succeeded", Undo: "native undo"}, {Address: `db["b"]`, State: "undo_failed", Undo: "native undo"}},
				{{Address: "conf", State: "succeeded", Undo: "rollback: core.file", Preview: &run.UndoPreview{
					Plan: &sdk.PlanResult{Summary: "overwrite /etc/conf", Details: []string{"mode 0644"}, Warnings: []string{"/etc/conf is a symlink"}}}},
					{Address: "hook", State: "succeeded", Undo: "rollback: x.y", Preview: &run.UndoPreview{Error: "x: unreachable"}}},
			},
			Irreversible: []string{"notify"},
		}, `Rollback of run 01RUN (failed)

Undo, in this order (the undos of one level run in parallel):
  level 1
    1. db["a"]  native undo  (succeeded)
    2. db["b"]  native undo  (undo_failed)
  level 2
    3. conf  rollback: core.file  (succeeded)
       will: overwrite /etc/conf
         mode 0644
       warning: /etc/conf is a symlink
    4. hook  rollback: x.y  (succeeded)
       cannot plan: x: unreachable

Cannot be undone (no rollback declared; what they did stays):
    notify

4 to undo, 1 irreversible.
`},
		{"nothing", &session.UndoPlan{RunID: "01RUN", State: "succeeded"}, `Rollback of run 01RUN (succeeded)

Nothing to undo.

0 to undo, 0 irreversible.
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			WriteUndoPlan(&b, tc.plan)
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	p := &session.UndoPlan{RunID: "01RUN", Runbook: "deploy", Dir: "/srv/rb", State: "succeeded", Picked: true, Here: true}
	if got, want := PickedRun(p), `Rolling back run 01RUN (runbook "deploy"), the latest run of the runbook in /srv/rb, succeeded.`; got != want {
		t.Errorf("PickedRun = %q, want %q", got, want)
	}
	p.Here, p.Runbook = false, ""
	if got, want := PickedRun(p), `Rolling back run 01RUN, the latest run in the state directory, succeeded.`; got != want {
		t.Errorf("PickedRun = %q, want %q", got, want)
	}
}

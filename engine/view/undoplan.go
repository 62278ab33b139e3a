package view

import (
	"fmt"
	"io"
	"strings"

	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/session"
)

// PickedRun is the line that says which run a rollback without RUN chose.
func PickedRun(p *session.UndoPlan) string {
	what := "the latest run in the state directory"
	if p.Here {
		what = "the latest run of the runbook in " + p.Dir
	}
	name := ""
	if p.Runbook != "" {
		name = fmt.Sprintf(" (runbook %q)", p.Runbook)
	}
	return fmt.Sprintf("Rolling back run %s%s, %s, %s.", p.RunID, name, what, p.State)
}

// WriteUndoPlan writes what a rollback will undo: the undos level by level
// in the order they run, and the steps whose effects stay.
func WriteUndoPlan(w io.Writer, p *session.UndoPlan) {
	var b strings.Builder
	fmt.Fprintf(&b, "Rollback of run %s (%s)\n", p.RunID, p.State)
	if p.Len() == 0 {
		b.WriteString("\nNothing to undo.\n")
	} else {
		fmt.Fprintf(&b, "\nUndo, in this order (the undos of one level run in parallel):\n")
		n := 0
		for i, l := range p.Levels {
			fmt.Fprintf(&b, "  level %d\n", i+1)
			for _, u := range l {
				n++
				fmt.Fprintf(&b, "    %d. %s  %s  (%s)\n", n, u.Address, u.Undo, u.State)
				writePreview(&b, u.Preview)
			}
		}
	}
	if len(p.Irreversible) > 0 {
		b.WriteString("\nCannot be undone (no rollback declared; what they did stays):\n")
		for _, a := range p.Irreversible {
			fmt.Fprintf(&b, "    %s\n", a)
		}
	}
	fmt.Fprintf(&b, "\n%d to undo, %d irreversible.\n", p.Len(), len(p.Irreversible))
	io.WriteString(w, b.String())
}

// writePreview writes what the plugin says an undo will do.
func writePreview(b *strings.Builder, pv *run.UndoPreview) {
	switch {
	case pv == nil:
	case pv.Error != "":
		fmt.Fprintf(b, "       cannot plan: %s\n", pv.Error)
	case pv.Plan != nil:
		if pv.Plan.Summary != "" {
			fmt.Fprintf(b, "       will: %s\n", pv.Plan.Summary)
		}
		for _, d := range pv.Plan.Details {
			fmt.Fprintf(b, "         %s\n", d)
		}
		for _, w := range pv.Plan.Warnings {
			fmt.Fprintf(b, "       warning: %s\n", w)
		}
	}
}

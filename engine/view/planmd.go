package view

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runbookdev/runbook/engine/lang"
)

// PlanDiff is what changed in a runbook's steps since a base version (a
// git ref): `runbook plan -format markdown -diff-base REF`.
type PlanDiff struct {
	Base           string
	Added, Removed []string
	Changed        []StepChange
}

// StepChange names what changed in one step: "action", "inputs: a, b",
// "rollback", "depends_on", ...
type StepChange struct {
	Step string
	What []string
}

// DiffConfigs compares the steps of two versions of a runbook by their
// source: steps added, removed, and for the others which arguments
// changed (for a `with` object, which inputs). base may be nil (the runbook
// did not exist at the base): every step is added.
func DiffConfigs(base, head *lang.Config, ref string) *PlanDiff {
	d := &PlanDiff{Base: ref}
	old := map[string]*lang.Step{}
	if base != nil {
		old = base.Steps
	}
	for _, name := range head.StepOrder {
		st := head.Steps[name]
		prev, ok := old[name]
		if !ok {
			d.Added = append(d.Added, name)
			continue
		}
		if what := stepChanges(base, prev, head, st); len(what) > 0 {
			d.Changed = append(d.Changed, StepChange{Step: name, What: what})
		}
	}
	if base != nil {
		for _, name := range base.StepOrder {
			if _, ok := head.Steps[name]; !ok {
				d.Removed = append(d.Removed, name)
			}
		}
	}
	return d
}

func stepChanges(bc *lang.Config, b *lang.Step, hc *lang.Config, h *lang.Step) []string {
	var what []string
	if b.Plugin+"."+b.Action != h.Plugin+"."+h.Action {
		what = append(what, fmt.Sprintf("action %s.%s → %s.%s", b.Plugin, b.Action, h.Plugin, h.Action))
	}
	if in := inputChanges(bc, b.With, hc, h.With); in != "" {
		what = append(what, in)
	}
	for _, e := range []struct {
		name string
		b, h hcl.Expression
	}{{"for_each", b.ForEach, h.ForEach}, {"when", b.When, h.When}} {
		if exprText(bc, e.b) != exprText(hc, e.h) {
			what = append(what, e.name)
		}
	}
	if rollbackText(bc, b.Rollback) != rollbackText(hc, h.Rollback) {
		what = append(what, "rollback")
	}
	if !reflect.DeepEqual(b.DependsOn, h.DependsOn) {
		what = append(what, "depends_on")
	}
	if !reflect.DeepEqual(b.Retry, h.Retry) {
		what = append(what, "retry")
	}
	if b.Timeout != h.Timeout {
		what = append(what, "timeout")
	}
	if b.OnFailure != h.OnFailure {
		what = append(what, "on_failure")
	}
	if b.Always != h.Always {
		what = append(what, "always")
	}
	return what
}

// inputChanges says which inputs of `with` changed: by name when both
// sides are object constructors, else as a whole.
func inputChanges(bc *lang.Config, b hcl.Expression, hc *lang.Config, h hcl.Expression) string {
	bo, bok := objectItems(bc, b)
	ho, hok := objectItems(hc, h)
	if !bok || !hok {
		if exprText(bc, b) != exprText(hc, h) {
			return "inputs"
		}
		return ""
	}
	set := map[string]bool{}
	for k, v := range ho {
		if bv, ok := bo[k]; !ok || bv != v {
			set[k] = true
		}
	}
	for k := range bo {
		if _, ok := ho[k]; !ok {
			set[k] = true
		}
	}
	if len(set) == 0 {
		return ""
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "inputs: " + strings.Join(keys, ", ")
}

// objectItems maps the keys of an object constructor to the text of
// their values.
func objectItems(c *lang.Config, e hcl.Expression) (map[string]string, bool) {
	if e == nil {
		return map[string]string{}, true
	}
	oc, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for _, it := range oc.Items {
		k := hcl.ExprAsKeyword(it.KeyExpr)
		if k == "" {
			v, d := it.KeyExpr.Value(nil)
			if d.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type().FriendlyName() != "string" {
				return nil, false
			}
			k = v.AsString()
		}
		out[k] = exprText(c, it.ValueExpr)
	}
	return out, true
}

// exprText is an expression's source with whitespace runs made one space,
// "" for none.
func exprText(c *lang.Config, e hcl.Expression) string {
	if e == nil || c == nil {
		return ""
	}
	r := e.Range()
	src, ok := c.Sources[r.Filename]
	if !ok {
		return ""
	}
	return strings.Join(strings.Fields(string(r.SliceBytes(src))), " ")
}

func rollbackText(c *lang.Config, r *lang.Rollback) string {
	switch {
	case r == nil:
		return ""
	case r.Native:
		return "native"
	}
	return r.Plugin + "." + r.Action + " " + exprText(c, r.With)
}

// WritePlanMarkdown writes a plan as Markdown for a pull request: the
// steps in execution order with what undoes each, the point of no return,
// and, with d, what changed since the base.
func WritePlanMarkdown(w io.Writer, p *lang.Plan, d *PlanDiff) error {
	var b strings.Builder
	title := "Runbook plan"
	if p.Name != "" {
		title += ": `" + p.Name + "`"
	}
	fmt.Fprintf(&b, "## %s\n\n", title)
	if p.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", mdText(p.Description))
	}
	if p.Lock != "" {
		fmt.Fprintf(&b, "Lock: `%s`\n\n", mdCode(p.Lock))
	}
	changed := map[string]string{}
	if d != nil {
		for _, a := range d.Added {
			changed[a] = "added"
		}
		for _, c := range d.Changed {
			changed[c.Step] = "changed"
		}
	}
	fmt.Fprintf(&b, "%d steps in %d levels (steps on one level run in parallel).\n\n", len(p.Steps), len(p.Levels))
	b.WriteString("| Level | Step | Action | After | On rollback | Notes |\n")
	b.WriteString("|---:|---|---|---|---|---|\n")
	for _, s := range p.Steps {
		rb := string(s.Reversibility)
		switch s.Reversibility {
		case lang.Reversible:
			rb = "reversible (" + s.Undo + ")"
		case lang.Irreversible:
			rb = "**irreversible**"
		}
		var notes []string
		if s.Name == p.PointOfNoReturn {
			notes = append(notes, "**point of no return**")
		}
		if c := changed[s.Name]; c != "" {
			notes = append(notes, c+" since `"+mdCode(d.Base)+"`")
		}
		if s.Always {
			notes = append(notes, "always runs")
		}
		if s.OnFailure != "" && s.OnFailure != lang.OnFailureRollback {
			notes = append(notes, "on_failure = "+s.OnFailure)
		}
		if s.ForEach {
			if s.InstancesKnown {
				notes = append(notes, fmt.Sprintf("%d instances", len(s.Instances)))
			} else {
				notes = append(notes, "instances known after apply")
			}
		}
		if s.Retry != nil && s.Retry.Attempts > 1 {
			notes = append(notes, fmt.Sprintf("%d attempts", s.Retry.Attempts))
		}
		if s.Timeout > 0 {
			notes = append(notes, "timeout "+s.Timeout.String())
		}
		after := "—"
		if len(s.Deps) > 0 {
			after = strings.Join(s.Deps, ", ")
		}
		fmt.Fprintf(&b, "| %d | `%s` | `%s.%s` | %s | %s | %s |\n", s.Level+1, s.Name, s.Plugin, s.Action, mdText(after), mdText(rb), mdText(strings.Join(notes, "; ")))
	}
	b.WriteString("\n")
	if p.PointOfNoReturn != "" {
		fmt.Fprintf(&b, "**Point of no return:** step `%s` has no rollback and is not read-only: once it has run, a later failure cannot undo everything automatically.\n", p.PointOfNoReturn)
	} else {
		b.WriteString("Every step is read-only or reversible: a failure at any point is undone automatically.\n")
	}
	if d != nil {
		fmt.Fprintf(&b, "\n### Changes since `%s`\n\n", mdCode(d.Base))
		if len(d.Added)+len(d.Removed)+len(d.Changed) == 0 {
			b.WriteString("No step changed.\n")
		}
		if len(d.Added) > 0 {
			fmt.Fprintf(&b, "- Added: %s\n", codeList(d.Added))
		}
		if len(d.Removed) > 0 {
			fmt.Fprintf(&b, "- Removed: %s\n", codeList(d.Removed))
		}
		for _, c := range d.Changed {
			fmt.Fprintf(&b, "- Changed: `%s` (%s)\n", c.Step, mdText(strings.Join(c.What, "; ")))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func codeList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = "`" + x + "`"
	}
	return strings.Join(q, ", ")
}

// mdText escapes what would break a table cell or start markup.
func mdText(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// mdCode is s for inside a code span.
func mdCode(s string) string { return strings.ReplaceAll(mdText(s), "`", "'") }

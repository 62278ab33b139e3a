package lang

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbookdev/runbook/engine/graph"
)

// refCtx says which reference roots an expression may use.
type refCtx struct {
	where string // "a step's with", ... for messages
	each  bool   // each.key / each.value (steps with for_each)
	self  bool   // self.inputs / self.outputs (rollback.with)
	steps bool   // step.NAME
	vars  bool   // var.NAME
	local bool   // local.NAME
	run   bool   // run.id
}

func (r refCtx) roots() []string {
	var out []string
	for _, x := range []struct {
		ok   bool
		name string
	}{{r.vars, "var"}, {r.local, "local"}, {r.steps, "step"}, {r.each, "each"}, {r.self, "self"}, {r.run, "run"}} {
		if x.ok {
			out = append(out, x.name)
		}
	}
	return out
}

// checkRefs validates every reference in expr and returns the steps and
// locals it refers to, with the range of the first reference to each.
func (c *Config) checkRefs(expr hcl.Expression, rc refCtx) (steps, locals map[string]hcl.Range, diags hcl.Diagnostics) {
	steps, locals = map[string]hcl.Range{}, map[string]hcl.Range{}
	if expr == nil {
		return steps, locals, nil
	}
	for _, t := range expr.Variables() {
		step, local, d := c.checkTraversal(t, rc)
		if d.HasErrors() {
			c.badRefs[t.SourceRange()] = true
		}
		diags = append(diags, d...)
		if step != "" {
			if _, seen := steps[step]; !seen {
				steps[step] = t.SourceRange()
			}
		}
		if local != "" {
			if _, seen := locals[local]; !seen {
				locals[local] = t.SourceRange()
			}
		}
	}
	return steps, locals, diags
}

func refErr(t hcl.Traversal, summary, detail string) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: t.SourceRange().Ptr()}}
}

// attrAfterRoot returns the attribute name right after the root, or "".
func attrAt(t hcl.Traversal, i int) (string, bool) {
	if len(t) <= i {
		return "", false
	}
	a, ok := t[i].(hcl.TraverseAttr)
	if !ok {
		return "", false
	}
	return a.Name, true
}

func (c *Config) checkTraversal(t hcl.Traversal, rc refCtx) (step, local string, diags hcl.Diagnostics) {
	root := t.RootName()
	allowed := rc.roots()
	ok := false
	for _, r := range allowed {
		ok = ok || r == root
	}
	if !ok {
		switch root {
		case "each":
			return "", "", refErr(t, "each is not available here",
				fmt.Sprintf("each.key and each.value exist only in a step with for_each (in its with, when and rollback); this is %s.", rc.where))
		case "self":
			return "", "", refErr(t, "self is not available here",
				fmt.Sprintf("self.inputs and self.outputs exist only inside a rollback block; this is %s.", rc.where))
		case "var", "local", "step", "run":
			return "", "", refErr(t, fmt.Sprintf("%s is not available here", root),
				fmt.Sprintf("%s may refer only to %s.", capitalize(rc.where), quoteList(allowed)))
		}
		detail := fmt.Sprintf("There is no %q. References start with %s.", root, quoteList(allowed))
		if s := suggest(root, allowed); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		return "", "", refErr(t, "Unknown reference", detail)
	}
	name, hasName := attrAt(t, 1)
	switch root {
	case "var":
		if !hasName {
			return "", "", refErr(t, "Invalid variable reference", "Write var.NAME.")
		}
		if _, ok := c.Variables[name]; !ok {
			detail := fmt.Sprintf("There is no variable %q.", name)
			if s := didYouMean(name, mapKeys(c.Variables)); s != "" {
				detail += s
			} else {
				detail += fmt.Sprintf(" Declare it with a block variable %q { type = string } or fix the name.", name)
			}
			return "", "", refErr(t, "Reference to undeclared variable", detail)
		}
	case "local":
		if !hasName {
			return "", "", refErr(t, "Invalid local value reference", "Write local.NAME.")
		}
		if _, ok := c.Locals[name]; !ok {
			return "", "", refErr(t, "Reference to undeclared local value",
				fmt.Sprintf("There is no local value %q in any locals block.%s", name, didYouMean(name, mapKeys(c.Locals))))
		}
		return "", name, nil
	case "run":
		if name != "id" {
			return "", "", refErr(t, "Invalid run reference", "The only attribute of run is run.id.")
		}
	case "each":
		if name != "key" && name != "value" {
			return "", "", refErr(t, "Invalid each reference", "Write each.key or each.value.")
		}
	case "self":
		if name != "inputs" && name != "outputs" {
			return "", "", refErr(t, "Invalid self reference", "Write self.inputs.NAME or self.outputs.NAME.")
		}
	case "step":
		if !hasName {
			return "", "", refErr(t, "Invalid step reference", "Write step.NAME.outputs.ATTR.")
		}
		s, ok := c.Steps[name]
		if !ok {
			return "", "", refErr(t, "Reference to undeclared step",
				fmt.Sprintf("There is no step %q.%s", name, didYouMean(name, c.StepOrder)))
		}
		if len(t) == 2 {
			return name, "", nil
		}
		i := 2
		if s.ForEach != nil {
			if _, isAttr := t[2].(hcl.TraverseAttr); isAttr {
				return name, "", refErr(t, "Missing instance key",
					fmt.Sprintf("Step %q uses for_each, so it has one instance per key: write step.%s[KEY].%s, or iterate with a for expression.", name, name, t[2].(hcl.TraverseAttr).Name))
			}
			i = 3
		} else if _, isAttr := t[2].(hcl.TraverseAttr); !isAttr {
			return name, "", refErr(t, "Unexpected instance key",
				fmt.Sprintf("Step %q has no for_each, so it has a single instance: write step.%s.outputs.ATTR.", name, name))
		}
		if len(t) > i {
			a, ok := t[i].(hcl.TraverseAttr)
			if !ok || (a.Name != "inputs" && a.Name != "outputs") {
				got := ""
				if ok {
					got = a.Name
				}
				return name, "", refErr(t, "Invalid step reference",
					fmt.Sprintf("A step has inputs and outputs: write step.%s.outputs.ATTR.%s", name, didYouMean(got, []string{"inputs", "outputs"})))
			}
		}
		return name, "", nil
	}
	return "", "", nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// resolve checks every reference, computes Step.Deps and reports cycles.
func (c *Config) resolve() hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Locals: direct references, then transitive step dependencies.
	localSteps := map[string]map[string]hcl.Range{}
	localLocals := map[string]map[string]hcl.Range{}
	for _, name := range mapKeys(c.Locals) {
		l := c.Locals[name]
		s, ls, d := c.checkRefs(l.Expr, refCtx{where: "a local value", steps: true, vars: true, local: true, run: true})
		diags = append(diags, d...)
		localSteps[name], localLocals[name] = s, ls
	}
	lg := graph.New()
	for _, name := range mapKeys(c.Locals) {
		lg.AddNode(name)
		for dep := range localLocals[name] {
			lg.AddEdge(name, dep)
		}
	}
	for _, cyc := range lg.Cycles() {
		var parts []string
		for i, n := range cyc {
			next := cyc[(i+1)%len(cyc)]
			parts = append(parts, fmt.Sprintf("  local.%s refers to local.%s at %s", n, next, pos(localLocals[n][next])))
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cycle between local values: " + cycleString("local.", cyc),
			Detail:   "Local values cannot depend on themselves:\n" + strings.Join(parts, "\n"),
			Subject:  c.Locals[cyc[0]].DeclRange.Ptr(),
		})
	}
	c.localDeps = map[string][]string{}
	for _, name := range mapKeys(c.Locals) {
		seen := map[string]bool{}
		steps := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			if seen[n] {
				return
			}
			seen[n] = true
			for s := range localSteps[n] {
				steps[s] = true
			}
			for l := range localLocals[n] {
				walk(l)
			}
		}
		walk(name)
		c.localDeps[name] = mapKeys(steps)
	}

	for _, name := range c.StepOrder {
		s := c.Steps[name]
		s.depRanges = map[string]hcl.Range{}
		add := func(dep string, rng hcl.Range) {
			if _, ok := s.depRanges[dep]; !ok {
				s.depRanges[dep] = rng
			}
		}
		base := refCtx{where: fmt.Sprintf("step %q", name), steps: true, vars: true, local: true, run: true}
		withCtx := base
		withCtx.each = s.ForEach != nil
		feCtx := base
		feCtx.where = fmt.Sprintf("the for_each of step %q", name)
		rbCtx := withCtx
		rbCtx.self = true
		for _, e := range []struct {
			expr hcl.Expression
			rc   refCtx
		}{{s.With, withCtx}, {s.When, withCtx}, {s.ForEach, feCtx}, {rollbackWith(s), rbCtx}} {
			steps, locals, d := c.checkRefs(e.expr, e.rc)
			diags = append(diags, d...)
			for dep, rng := range steps {
				add(dep, rng)
			}
			for l, rng := range locals {
				for _, dep := range c.localDeps[l] {
					add(dep, rng)
				}
			}
		}
		for _, dep := range s.DependsOn {
			rng := s.dependsOnRanges[dep]
			if _, ok := c.Steps[dep]; !ok {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Reference to undeclared step",
					Detail:   fmt.Sprintf("depends_on names step %q, which does not exist.%s", dep, didYouMean(dep, c.StepOrder)),
					Subject:  rng.Ptr(),
				})
				continue
			}
			add(dep, rng)
		}
		s.Deps = mapKeys(s.depRanges)
	}

	for _, name := range mapKeys(c.Outputs) {
		_, _, d := c.checkRefs(c.Outputs[name].Value, refCtx{where: fmt.Sprintf("output %q", name), steps: true, vars: true, local: true, run: true})
		diags = append(diags, d...)
	}
	if c.Runbook != nil && c.Runbook.Lock != nil {
		_, locals, d := c.checkRefs(c.Runbook.Lock, refCtx{where: "the runbook lock", vars: true, local: true})
		diags = append(diags, d...)
		for l, rng := range locals {
			if len(c.localDeps[l]) > 0 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Lock depends on a step",
					Detail:   fmt.Sprintf("The lock is taken before any step runs, but local.%s depends on step %q.", l, c.localDeps[l][0]),
					Subject:  rng.Ptr(),
				})
			}
		}
	}
	for _, name := range mapKeys(c.Variables) {
		v := c.Variables[name]
		for _, val := range v.Validations {
			for _, e := range []hcl.Expression{val.Condition, val.ErrorMessage} {
				_, _, d := c.checkRefs(e, refCtx{where: fmt.Sprintf("a validation of variable %q", name), vars: true})
				diags = append(diags, d...)
			}
		}
	}
	diags = append(diags, c.cycleDiags()...)
	return diags
}

func rollbackWith(s *Step) hcl.Expression {
	if s.Rollback == nil {
		return nil
	}
	return s.Rollback.With
}

func cycleString(prefix string, cyc []string) string {
	parts := make([]string, 0, len(cyc)+1)
	for _, n := range append(append([]string(nil), cyc...), cyc[0]) {
		parts = append(parts, prefix+n)
	}
	return strings.Join(parts, " -> ")
}

// Graph returns the step dependency graph (a step depends on its Deps).
func (c *Config) Graph() *graph.Graph {
	g := graph.New()
	for _, name := range c.StepOrder {
		g.AddNode(name)
	}
	for _, name := range c.StepOrder {
		for _, dep := range c.Steps[name].Deps {
			if _, ok := c.Steps[dep]; ok {
				g.AddEdge(name, dep)
			}
		}
	}
	return g
}

// cycleDiags reports each dependency cycle as one diagnostic naming every
// step in it and where each dependency comes from.
func (c *Config) cycleDiags() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, cyc := range c.Graph().Cycles() {
		var lines []string
		for i, n := range cyc {
			next := cyc[(i+1)%len(cyc)]
			s := c.Steps[n]
			lines = append(lines, fmt.Sprintf("  step %q (%s) depends on step %q at %s", n, pos(s.DeclRange), next, pos(s.depRanges[next])))
		}
		summary := "Dependency cycle between steps: " + cycleString("step.", cyc)
		if len(cyc) == 1 {
			summary = fmt.Sprintf("Step %q depends on itself", cyc[0])
		}
		first := c.Steps[cyc[0]]
		rng := first.depRanges[cyc[(1)%len(cyc)]]
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail: "Steps run after the steps they depend on, so these can never start:\n" + strings.Join(lines, "\n") +
				"\n\nRemove one of these references or depends_on entries to break the cycle.",
			Subject: rng.Ptr(),
		})
	}
	return diags
}

// RollbackGraph is the undo order: only steps with a rollback appear, and
// a step's undo depends on the undo of every step that (directly or through
// steps without rollback) depended on it. It is graph.Undo of the step
// graph: the executor and `runbook graph -rollback` use the same order.
func (c *Config) RollbackGraph() *graph.Graph {
	return c.Graph().Undo(func(n string) bool { s := c.Steps[n]; return s != nil && s.Rollback != nil })
}

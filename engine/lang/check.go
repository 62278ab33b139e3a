package lang

import (
	"errors"
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbookdev/runbook/sdk"
)

// ActionLister is optionally implemented by a SchemaSource to list a
// plugin's actions, for "did you mean" suggestions.
type ActionLister interface {
	ActionNames(plugin string) ([]string, error)
}

// Check is phase 2: it decodes every step's `with` (and rollback `with`)
// against the action's input schema, checks references to step.X.outputs.Y
// and step.X.inputs.Y against the schemas, and type-checks every
// expression with typed unknown values. Every problem is reported.
func (c *Config) Check(src SchemaSource) hcl.Diagnostics {
	ch := &checker{c: c, src: src, schemas: map[string]*schemaResult{}}
	return uniqueDiags(ch.run())
}

type schemaResult struct {
	s   sdk.ActionSchema
	ok  bool
	err error
}

type checker struct {
	c       *Config
	src     SchemaSource
	schemas map[string]*schemaResult
	diags   hcl.Diagnostics
}

func (ch *checker) schema(plugin, action string) *schemaResult {
	key := plugin + "." + action
	if r, ok := ch.schemas[key]; ok {
		return r
	}
	r := &schemaResult{}
	if plugin != "" && action != "" && ch.src != nil {
		r.s, r.ok, r.err = ch.src.ActionSchema(plugin, action)
	}
	ch.schemas[key] = r
	return r
}

// lookup reports a diagnostic when PLUGIN.ACTION cannot be found.
func (ch *checker) lookup(plugin, action string, rng hcl.Range) (sdk.ActionSchema, bool) {
	if plugin == "" || action == "" || ch.src == nil {
		return sdk.ActionSchema{}, false
	}
	r := ch.schema(plugin, action)
	switch {
	case r.err != nil:
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Unknown plugin %q", plugin),
			Detail: fmt.Sprintf("Cannot load plugin %q: %s\n\nBuiltin plugins need no declaration; an external plugin needs a plugin %q { source = PATH } block and `runbook init`.",
				plugin, r.err, plugin),
			Subject: rng.Ptr(),
		}
		// A plugin that exists but could not start, or was refused (its
		// checksum, its directory's permissions), is not unknown.
		switch e := sdk.Classify(r.err); e.Kind {
		case sdk.KindInternal:
			d.Summary, d.Detail = fmt.Sprintf("Plugin %q failed to start", plugin), r.err.Error()
		case sdk.KindInvalid:
			d.Summary, d.Detail = fmt.Sprintf("Plugin %q is refused", plugin), r.err.Error()
		}
		if h := sdk.Classify(r.err).Hint; h != "" && d.Detail == r.err.Error() {
			d.Detail += "\n\nHint: " + h
		}
		ch.add(d)
		return sdk.ActionSchema{}, false
	case !r.ok:
		detail := fmt.Sprintf("Plugin %q has no action %q.", plugin, action)
		if l, ok := ch.src.(ActionLister); ok {
			if names, err := l.ActionNames(plugin); err == nil {
				if s := suggest(action, names); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", plugin+"."+s)
				} else if len(names) > 0 {
					sort.Strings(names)
					detail += " Its actions are " + quoteAll(names) + "."
				}
			}
		}
		ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown action", Detail: detail, Subject: rng.Ptr()})
		return sdk.ActionSchema{}, false
	}
	return r.s, true
}

// add appends a diagnostic unless it is about a reference already reported.
func (ch *checker) add(ds ...*hcl.Diagnostic) {
	for _, d := range ds {
		if d.Subject != nil && ch.c.isBadRange(*d.Subject) {
			continue
		}
		ch.diags = append(ch.diags, d)
	}
}

func (c *Config) isBadRange(r hcl.Range) bool {
	for b := range c.badRefs {
		if b.Filename == r.Filename && r.Start.Byte >= b.Start.Byte && r.End.Byte <= b.End.Byte {
			return true
		}
	}
	return false
}

func (ch *checker) run() hcl.Diagnostics {
	c := ch.c
	// Schemas of every step; typed unknown values for static evaluation.
	steps := map[string]cty.Value{}
	stepSchemas := map[string]sdk.ActionSchema{}
	unknown := map[string]cty.Value{} // plugin.action -> UnknownStep (steps share actions)
	for _, name := range c.StepOrder {
		s := c.Steps[name]
		schema, ok := ch.lookup(s.Plugin, s.Action, s.TypeRange)
		if !ok {
			steps[name] = cty.DynamicVal
			continue
		}
		stepSchemas[name] = schema
		v, ok := unknown[s.Plugin+"."+s.Action]
		if !ok {
			v = UnknownStep(schema)
			unknown[s.Plugin+"."+s.Action] = v
		}
		if s.ForEach != nil {
			v = cty.UnknownVal(cty.Map(v.Type()))
		}
		steps[name] = v
	}
	vars := map[string]cty.Value{}
	for name, v := range c.Variables {
		val := cty.UnknownVal(v.Type.WithoutOptionalAttributesDeep())
		if v.Sensitive {
			val = val.Mark(MarkSensitive)
		}
		vars[name] = val
	}
	scope := &Scope{Config: c, Vars: vars, Steps: steps}

	// References to step inputs and outputs, checked against schemas.
	ch.checkStepAttrRefs(stepSchemas)

	ctx := scope.baseCtx()
	locals, d := scope.locals(ctx)
	ctx.Variables["local"] = cty.ObjectVal(locals)
	roots := map[string]cty.Value{}
	for k, v := range ctx.Variables {
		roots[k] = v
	}
	for _, name := range mapKeys(c.Locals) {
		ch.checkAttrs(c.Locals[name].Expr, roots)
	}
	ch.add(d...)
	for _, name := range mapKeys(c.Outputs) {
		ch.checkAttrs(c.Outputs[name].Value, roots)
	}

	for _, name := range c.StepOrder {
		s := c.Steps[name]
		schema, hasSchema := stepSchemas[name]
		in := Instance{Key: cty.NilVal}
		if s.ForEach != nil {
			_, known, ty, d := expandForEach(s, ctx)
			ch.add(d...)
			in = Instance{Key: cty.UnknownVal(cty.String), Value: cty.DynamicVal}
			if ty != cty.NilType {
				if !known && !d.HasErrors() {
					ch.checkForEachType(s, ty)
				}
				if ty.IsMapType() {
					in.Value = cty.UnknownVal(ty.ElementType())
				} else if ty.IsSetType() {
					in.Value = cty.UnknownVal(cty.String)
				}
			}
		}
		ectx := eachCtx(ctx, in)
		stepRoots := map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.UnknownVal(cty.String), "value": in.Value})}
		for k, v := range roots {
			stepRoots[k] = v
		}
		for _, e := range []hcl.Expression{s.With, s.When, s.ForEach} {
			ch.checkAttrs(e, stepRoots)
		}
		if s.Rollback != nil && s.Rollback.With != nil {
			self := cty.DynamicVal
			if hasSchema {
				self = UnknownStep(schema)
			}
			stepRoots["self"] = self
			ch.checkAttrs(s.Rollback.With, stepRoots)
		}
		if s.When != nil {
			v, d := s.When.Value(ectx)
			ch.add(d...)
			if !d.HasErrors() {
				uv := unmarkDeep(v)
				if _, err := convert.Convert(uv, cty.Bool); err != nil {
					ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid when",
						Detail:  fmt.Sprintf("The when of step %q must be true or false; got %s.", name, uv.Type().FriendlyName()),
						Subject: s.When.Range().Ptr()})
				}
			}
		}
		what := fmt.Sprintf("step %q (%s.%s)", name, s.Plugin, s.Action)
		if hasSchema {
			ch.checkWith(s.With, schema, ectx, what, s.DeclRange)
		} else if s.With != nil {
			_, d := s.With.Value(ectx)
			ch.add(d...)
		}
		ch.checkRollback(s, schema, hasSchema, ectx)
	}
	for _, name := range mapKeys(c.Outputs) {
		_, d := c.Outputs[name].Value.Value(ctx)
		ch.add(d...)
	}
	if c.Runbook != nil && c.Runbook.Lock != nil {
		v, d := c.Runbook.Lock.Value(ctx)
		ch.add(d...)
		if !d.HasErrors() {
			if _, err := convert.Convert(unmarkDeep(v), cty.String); err != nil {
				ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid lock",
					Detail: fmt.Sprintf("The lock key must be a string; got %s.", v.Type().FriendlyName()), Subject: c.Runbook.Lock.Range().Ptr()})
			} else if v.IsMarked() {
				ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid lock",
					Detail: "The lock key is shown in logs and run records, so it cannot use sensitive values.", Subject: c.Runbook.Lock.Range().Ptr()})
			}
		}
	}
	return ch.diags
}

// checkForEachType checks the type of a for_each whose value is not known
// yet (expandValue checks known ones).
func (ch *checker) checkForEachType(s *Step, ty cty.Type) {
	if ty == cty.DynamicPseudoType || ty.IsMapType() || ty.IsObjectType() {
		return
	}
	if ty.IsSetType() && (ty.ElementType() == cty.String || ty.ElementType() == cty.DynamicPseudoType) {
		return
	}
	hint := ""
	if ty.IsListType() || ty.IsTupleType() {
		hint = " Convert a list with toset(...)."
	}
	ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid for_each",
		Detail:  fmt.Sprintf("The for_each of step %q is %s; it must be a map or a set of strings.%s", s.Name, ty.FriendlyName(), hint),
		Subject: s.ForEach.Range().Ptr()})
}

func (ch *checker) checkRollback(s *Step, schema sdk.ActionSchema, hasSchema bool, ectx *hcl.EvalContext) {
	rb := s.Rollback
	if rb == nil {
		return
	}
	if rb.Native {
		if hasSchema && !schema.Capabilities.NativeUndo {
			ch.add(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No native undo",
				Detail: fmt.Sprintf("Action %s.%s has no native undo, so `rollback = native` cannot work. Write a rollback block with an action that undoes it, or remove the rollback if the step changes nothing.",
					s.Plugin, s.Action),
				Subject: rb.DeclRange.Ptr(),
			})
		}
		return
	}
	rbSchema, ok := ch.lookup(rb.Plugin, rb.Action, rb.DeclRange)
	self := cty.DynamicVal
	if hasSchema {
		self = UnknownStep(schema)
	}
	child := ectx.NewChild()
	child.Variables = map[string]cty.Value{"self": self}
	what := fmt.Sprintf("the rollback of step %q (%s.%s)", s.Name, rb.Plugin, rb.Action)
	if ok {
		ch.checkWith(rb.With, rbSchema, child, what, rb.DeclRange)
	} else if rb.With != nil {
		_, d := rb.With.Value(child)
		ch.add(d...)
	}
}

// checkWith decodes a `with` against an action's input schema: unknown and
// missing attributes, and the type of every attribute.
func (ch *checker) checkWith(expr hcl.Expression, schema sdk.ActionSchema, ctx *hcl.EvalContext, what string, declRange hcl.Range) {
	names := make([]string, 0, len(schema.Inputs))
	for _, a := range schema.Inputs {
		names = append(names, a.Name)
	}
	missing := func(present map[string]bool, rng hcl.Range) {
		var miss []string
		for _, a := range schema.Inputs {
			if a.Required && !present[a.Name] {
				miss = append(miss, a.Name)
			}
		}
		if len(miss) == 0 {
			return
		}
		summary := fmt.Sprintf("Missing required input %q", miss[0])
		if len(miss) > 1 {
			summary = "Missing required inputs " + quoteList(miss)
		}
		var lines string
		for _, m := range miss {
			a := schema.Input(m)
			lines += fmt.Sprintf("\n  %s (%s)", m, a.Type.FriendlyName())
			if a.Description != "" {
				lines += ": " + a.Description
			}
		}
		ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
			Detail:  fmt.Sprintf("%s needs these inputs in its with:%s", capitalize(what), lines),
			Subject: rng.Ptr()})
	}
	if expr == nil {
		missing(map[string]bool{}, declRange)
		return
	}
	pairs, d := hcl.ExprMap(expr)
	if d.HasErrors() {
		// Not an object literal (e.g. merge(...)): evaluate it whole.
		v, d := expr.Value(ctx)
		ch.add(d...)
		if d.HasErrors() {
			return
		}
		uv := unmarkDeep(v)
		if !uv.IsKnown() && uv.Type() == cty.DynamicPseudoType {
			return
		}
		if !uv.Type().IsObjectType() && !uv.Type().IsMapType() {
			ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid with",
				Detail:  fmt.Sprintf("The with of %s must be an object of the action's inputs, like with = { name = \"value\" }; got %s.", what, uv.Type().FriendlyName()),
				Subject: expr.Range().Ptr()})
			return
		}
		if uv.Type().IsObjectType() {
			present := map[string]bool{}
			for k := range uv.Type().AttributeTypes() {
				present[k] = true
				if schema.Input(k) == nil {
					ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Unsupported input %q", k),
						Detail:  fmt.Sprintf("%s has no input %q.%s", capitalize(what), k, didYouMean(k, names)),
						Subject: expr.Range().Ptr()})
				}
			}
			missing(present, expr.Range())
		}
		if _, err := convert.Convert(uv, schema.InputType()); err != nil && uv.Type().IsObjectType() {
			for k, t := range uv.Type().AttributeTypes() {
				if a := schema.Input(k); a != nil {
					if _, err := convert.Convert(cty.UnknownVal(t), a.Type); err != nil {
						ch.typeErr(a, t, err, what, expr.Range())
					}
				}
			}
		}
		return
	}
	present := map[string]bool{}
	dynamicKeys := false
	for _, p := range pairs {
		key := hcl.ExprAsKeyword(p.Key)
		if key == "" {
			kv, d := p.Key.Value(ctx)
			if d.HasErrors() || !kv.IsKnown() || kv.IsNull() || kv.Type() != cty.String {
				ch.add(d...)
				dynamicKeys = true
				continue // computed keys are checked at run time
			}
			key = kv.AsString()
		}
		if present[key] {
			ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate input %q", key),
				Detail: fmt.Sprintf("Input %q is set more than once in the with of %s.", key, what), Subject: p.Key.Range().Ptr()})
		}
		present[key] = true
		a := schema.Input(key)
		v, d := p.Value.Value(ctx)
		ch.add(d...)
		if a == nil {
			detail := fmt.Sprintf("%s has no input %q.%s", capitalize(what), key, didYouMean(key, names))
			if len(names) > 0 && suggest(key, names) == "" {
				detail += " Its inputs are " + quoteAll(names) + "."
			}
			ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Unsupported input %q", key), Detail: detail, Subject: p.Key.Range().Ptr()})
			continue
		}
		if d.HasErrors() {
			continue
		}
		if _, err := convert.Convert(unmarkDeep(v), a.Type); err != nil {
			ch.typeErr(a, v.Type(), err, what, p.Value.Range())
		}
	}
	if !dynamicKeys {
		missing(present, expr.Range())
	}
}

func (ch *checker) typeErr(a *sdk.Attribute, got cty.Type, err error, what string, rng hcl.Range) {
	detail := fmt.Sprintf("Input %q of %s must be %s, but this is %s.", a.Name, what, a.Type.FriendlyName(), got.FriendlyName())
	var pe cty.PathError
	if errors.As(err, &pe) && len(pe.Path) > 0 {
		detail += fmt.Sprintf(" Inside it: %s.", err)
	}
	if (a.Type.IsListType() || a.Type.IsSetType()) && got.IsPrimitiveType() {
		detail += " Write a list, for example [\"a\", \"b\"], even for a single value."
	}
	ch.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Incorrect type for input %q", a.Name),
		Detail:   detail,
		Subject:  rng.Ptr(),
	})
}

// checkStepAttrRefs checks step.X.outputs.Y and step.X.inputs.Y references
// in every expression against the schemas.
func (ch *checker) checkStepAttrRefs(schemas map[string]sdk.ActionSchema) {
	c := ch.c
	var exprs []hcl.Expression
	for _, name := range c.StepOrder {
		s := c.Steps[name]
		exprs = append(exprs, s.With, s.When, s.ForEach, rollbackWith(s))
	}
	for _, name := range mapKeys(c.Locals) {
		exprs = append(exprs, c.Locals[name].Expr)
	}
	for _, name := range mapKeys(c.Outputs) {
		exprs = append(exprs, c.Outputs[name].Value)
	}
	for _, e := range exprs {
		if e == nil {
			continue
		}
		for _, t := range e.Variables() {
			if t.RootName() != "step" || c.badRefs[t.SourceRange()] {
				continue
			}
			name, _ := attrAt(t, 1)
			s, ok := c.Steps[name]
			schema, hasSchema := schemas[name]
			if !ok || !hasSchema {
				continue
			}
			i := 2
			if s.ForEach != nil {
				i = 3
			}
			part, ok1 := attrAt(t, i)
			attr, ok2 := attrAt(t, i+1)
			if !ok1 || !ok2 {
				continue
			}
			var list []sdk.Attribute
			if part == "outputs" {
				list = schema.Outputs
			} else {
				list = schema.Inputs
			}
			found := false
			names := make([]string, 0, len(list))
			for _, a := range list {
				names = append(names, a.Name)
				found = found || a.Name == attr
			}
			if found {
				continue
			}
			detail := fmt.Sprintf("Step %q (%s.%s) has no %s %q.", name, s.Plugin, s.Action, part[:len(part)-1], attr)
			if sug := suggest(attr, names); sug != "" {
				detail += fmt.Sprintf(" Did you mean %q?", sug)
			} else if len(names) > 0 {
				detail += fmt.Sprintf(" Its %s are %s.", part, quoteAll(names))
			} else {
				detail += fmt.Sprintf(" It has no %s.", part)
			}
			ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Unknown %s %q", part[:len(part)-1], attr),
				Detail: detail, Subject: t.SourceRange().Ptr()})
			c.badRefs[t.SourceRange()] = true
		}
	}
}

func unmarkDeep(v cty.Value) cty.Value {
	uv, _ := v.UnmarkDeep()
	return uv
}

// checkAttrs walks every traversal of expr through the static values of its
// roots and reports an attribute missing from an object type, naming the
// close ones. Such errors would otherwise come from evaluation without a
// suggestion.
func (ch *checker) checkAttrs(expr hcl.Expression, roots map[string]cty.Value) {
	if expr == nil {
		return
	}
	for _, t := range expr.Variables() {
		if ch.c.badRefs[t.SourceRange()] {
			continue
		}
		cur, ok := roots[t.RootName()]
		if !ok {
			continue
		}
		path := t.RootName()
		for _, step := range t[1:] {
			cur, _ = cur.Unmark()
			ty := cur.Type()
			if a, isAttr := step.(hcl.TraverseAttr); isAttr && ty.IsObjectType() && !ty.HasAttribute(a.Name) {
				names := mapKeys(ty.AttributeTypes())
				detail := fmt.Sprintf("%s has no attribute %q.", path, a.Name)
				if s := suggest(a.Name, names); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				} else if len(names) > 0 && len(names) <= 12 {
					detail += " Its attributes are " + quoteAll(names) + "."
				}
				ch.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported attribute", Detail: detail, Subject: a.SrcRange.Ptr()})
				ch.c.badRefs[t.SourceRange()] = true
				break
			}
			if ty == cty.DynamicPseudoType {
				break
			}
			next, d := step.TraversalStep(cur)
			if d.HasErrors() {
				break
			}
			switch s := step.(type) {
			case hcl.TraverseAttr:
				path += "." + s.Name
			case hcl.TraverseIndex:
				path += "[" + FormatValue(s.Key, 0) + "]"
			}
			cur = next
		}
	}
}

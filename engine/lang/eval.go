package lang

import (
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/runbookdev/runbook/engine/graph"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/sdk"
)

// Scope evaluates a runbook's expressions at plan and run time.
//
// Steps holds what `step.NAME` evaluates to:
//
//	plain step:    StepValue(inputs, outputs)
//	for_each step: cty.ObjectVal(map[key]StepValue(...)) (instances known so far)
//	not yet run:   UnknownStep(schema) / cty.DynamicVal (the default when absent)
//
// A Scope only reads its fields; callers that update Steps while other
// goroutines evaluate must synchronise themselves (or use a fresh Scope).
type Scope struct {
	Config *Config
	Vars   map[string]cty.Value
	RunID  string
	Steps  map[string]cty.Value
	// Schemas is optional: when set, Inputs and RollbackInputs convert the
	// `with` object to the action's input type and mark sensitive inputs.
	Schemas SchemaSource
}

// Instance is one instance of a step: the only one without for_each, or
// one per for_each key.
type Instance struct {
	Key   cty.Value // cty.NilVal when no for_each
	Value cty.Value // each.value
}

// StepValue is what step.NAME (or step.NAME[KEY]) evaluates to once the
// step has run: object{inputs, outputs}. NilVal parts become empty objects.
func StepValue(inputs, outputs cty.Value) cty.Value {
	if inputs == cty.NilVal {
		inputs = cty.EmptyObjectVal
	}
	if outputs == cty.NilVal {
		outputs = cty.EmptyObjectVal
	}
	return cty.ObjectVal(map[string]cty.Value{"inputs": inputs, "outputs": outputs})
}

// UnknownStep is the value of a step that has not run yet: its inputs and
// outputs are unknown values of the action's types.
func UnknownStep(s sdk.ActionSchema) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"inputs":  cty.UnknownVal(s.InputType().WithoutOptionalAttributesDeep()),
		"outputs": cty.UnknownVal(s.OutputType()),
	})
}

// MarkAttrs marks the attributes of obj that attrs declares Sensitive.
// Use it on plugin outputs before building StepValue.
func MarkAttrs(attrs []sdk.Attribute, obj cty.Value) cty.Value {
	if obj == cty.NilVal || obj.IsNull() || !obj.IsKnown() || !obj.Type().IsObjectType() || !anySensitive(attrs) {
		return obj
	}
	obj, marks := obj.Unmark()
	m := obj.AsValueMap()
	changed := false
	for _, a := range attrs {
		if v, ok := m[a.Name]; ok && a.Sensitive {
			m[a.Name] = v.Mark(MarkSensitive)
			changed = true
		}
	}
	if changed {
		obj = cty.ObjectVal(m)
	}
	return obj.WithMarks(marks)
}

func anySensitive(attrs []sdk.Attribute) bool {
	for _, a := range attrs {
		if a.Sensitive {
			return true
		}
	}
	return false
}

// Address is a step instance's address: `db` or `db["cozy"]`. The
// password of a URL key is redacted (`sync["ssh://u:***@host/store"]`):
// addresses are journaled and shown everywhere. Expand refuses keys that
// would then share an address.
func Address(step string, key cty.Value) string {
	if key == cty.NilVal || key.IsNull() || !key.IsKnown() {
		return step
	}
	key, _ = key.Unmark()
	switch key.Type() {
	case cty.String:
		k, _ := mask.RedactURL(key.AsString())
		return step + "[" + strconv.Quote(k) + "]"
	case cty.Number:
		return step + "[" + formatNumber(key.AsBigFloat()) + "]"
	}
	return step
}

// funcCache holds the function table per base directory; Scopes are used
// from several goroutines, so they keep no lazily filled state themselves.
var funcCache sync.Map // base dir (and sensitive env names) -> map[string]function.Function

func (s *Scope) functions() map[string]function.Function {
	if s.Config == nil {
		return (&Config{}).functions()
	}
	return s.Config.functions()
}

// baseCtx builds the evaluation context without locals, with every
// variable and step.
func (s *Scope) baseCtx() *hcl.EvalContext {
	return s.baseCtxFor(nil, true)
}

// baseCtxFor builds the evaluation context of the references travs without
// locals. Unless all is set, var and step hold only what travs refer to:
// building the object of every step for each expression made plan
// quadratic in the number of steps (8,000 steps: 37 s).
func (s *Scope) baseCtxFor(travs []hcl.Traversal, all bool) *hcl.EvalContext {
	wantVars, allVars := referenced(travs, "var")
	wantSteps, allSteps := referenced(travs, "step")
	allVars, allSteps = allVars || all, allSteps || all
	vars := map[string]cty.Value{}
	steps := map[string]cty.Value{}
	if s.Config != nil {
		for name := range s.Config.Variables {
			if allVars || wantVars[name] {
				vars[name] = cty.DynamicVal
			}
		}
		if allSteps {
			for name := range s.Config.Steps {
				steps[name] = cty.DynamicVal
			}
		} else {
			for name := range wantSteps {
				if _, ok := s.Config.Steps[name]; ok {
					steps[name] = cty.DynamicVal
				}
			}
		}
	}
	for k, v := range s.Vars {
		if allVars || wantVars[k] {
			vars[k] = v
		}
	}
	if allSteps {
		for k, v := range s.Steps {
			steps[k] = v
		}
	} else {
		for k := range wantSteps {
			if v, ok := s.Steps[k]; ok {
				steps[k] = v
			}
		}
	}
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":  cty.ObjectVal(vars),
			"step": cty.ObjectVal(steps),
			"run":  cty.ObjectVal(map[string]cty.Value{"id": s.runID()}),
		},
		Functions: s.functions(),
	}
}

// referenced returns the attribute names travs use right after root
// (step.NAME); all is true when one of them uses root otherwise (as
// step["NAME"] or the whole object), so every name may be needed.
func referenced(travs []hcl.Traversal, root string) (names map[string]bool, all bool) {
	names = map[string]bool{}
	for _, t := range travs {
		if t.RootName() != root {
			continue
		}
		name, ok := attrAt(t, 1)
		if !ok {
			return names, true
		}
		names[name] = true
	}
	return names, false
}

// traversals lists the references of exprs.
func traversals(exprs []hcl.Expression) []hcl.Traversal {
	var out []hcl.Traversal
	for _, e := range exprs {
		if e != nil {
			out = append(out, e.Variables()...)
		}
	}
	return out
}

func (s *Scope) runID() cty.Value {
	if s.RunID == "" {
		return cty.UnknownVal(cty.String)
	}
	return cty.StringVal(s.RunID)
}

// Locals evaluates every local value in dependency order. A local that
// fails to evaluate is cty.DynamicVal in the result.
func (s *Scope) Locals() (map[string]cty.Value, hcl.Diagnostics) {
	return s.locals(s.baseCtx())
}

// locals evaluates the locals in ctx (a base context it may change).
func (s *Scope) locals(ctx *hcl.EvalContext) (map[string]cty.Value, hcl.Diagnostics) {
	return s.localsOf(ctx, nil, nil)
}

// localsOf evaluates the locals named in only (every one when nil) in ctx
// (a base context it may change); the others are cty.DynamicVal. Those in
// known are not evaluated again; those that depend on no step are
// remembered for s.
func (s *Scope) localsOf(ctx *hcl.EvalContext, only map[string]bool, known map[string]localValue) (map[string]cty.Value, hcl.Diagnostics) {
	out := map[string]cty.Value{}
	if s.Config == nil {
		ctx.Variables["local"] = cty.EmptyObjectVal
		return out, nil
	}
	g := graph.New()
	for name, l := range s.Config.Locals {
		if only != nil && !only[name] {
			continue
		}
		g.AddNode(name)
		for _, t := range s.Config.localVars(l.Name) {
			if t.RootName() != "local" {
				continue
			}
			if dep, ok := attrAt(t, 1); ok {
				if _, declared := s.Config.Locals[dep]; declared && (only == nil || only[dep]) {
					g.AddEdge(name, dep)
				}
			}
		}
	}
	order, err := g.TopoSort()
	var diags hcl.Diagnostics
	if err != nil {
		// Cycles are reported by Load; evaluate what can be.
		for name := range s.Config.Locals {
			out[name] = cty.DynamicVal
		}
	}
	for name := range s.Config.Locals {
		if only != nil && !only[name] {
			out[name] = cty.DynamicVal
		}
	}
	for _, name := range order {
		lv, ok := known[name]
		if !ok {
			lv, ok = s.Config.localMemo.cached(s, name)
		}
		if ok {
			out[name] = lv.v
			diags = append(diags, lv.diags...)
			continue
		}
		obj := map[string]cty.Value{}
		for k, v := range out {
			obj[k] = v
		}
		for k := range s.Config.Locals {
			if _, ok := obj[k]; !ok {
				obj[k] = cty.DynamicVal
			}
		}
		ctx.Variables["local"] = cty.ObjectVal(obj)
		l := s.Config.Locals[name]
		v, d := l.Expr.Value(ctx)
		v, d = storable(v, d, "local."+name, "", l.Expr.Range())
		diags = append(diags, d...)
		if d.HasErrors() {
			v = cty.DynamicVal
		}
		out[name] = v
		s.Config.localMemo.remember(s, name, localValue{v, d})
	}
	return out, diags
}

// ctx is the evaluation context of exprs. Only the locals exprs refer to
// (and those these refer to) are evaluated: with many steps, evaluating
// every local for every step would dominate a run, and a step with many
// instances is evaluated once per instance (Check reports the locals' own
// errors either way).
func (s *Scope) ctx(exprs ...hcl.Expression) (*hcl.EvalContext, hcl.Diagnostics) {
	travs := traversals(exprs)
	if !refersTo(travs, "local") {
		ctx := s.baseCtxFor(travs, false)
		ctx.Variables["local"] = cty.EmptyObjectVal
		return ctx, nil
	}
	// The context holds what the locals evaluated refer to too; a local
	// remembered from an earlier evaluation is not evaluated again.
	only := s.neededLocals(travs)
	var known map[string]localValue
	if s.Config != nil {
		for _, name := range mapKeys(s.Config.Locals) {
			if only != nil && !only[name] {
				continue
			}
			if lv, ok := s.Config.localMemo.cached(s, name); ok {
				if known == nil {
					known = map[string]localValue{}
				}
				known[name] = lv
				continue
			}
			travs = append(travs, s.Config.localVars(name)...)
		}
	}
	ctx := s.baseCtxFor(travs, false)
	// localsOf sets ctx's "local" while it evaluates them; the result
	// replaces it.
	locals, diags := s.localsOf(ctx, only, known)
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx, diags
}

// neededLocals names the locals exprs refer to as local.NAME and, in
// turn, those these refer to; nil (every local) when one of them uses
// local otherwise (the whole object, or local["NAME"]).
func (s *Scope) neededLocals(travs []hcl.Traversal) map[string]bool {
	if s.Config == nil {
		return nil
	}
	need := map[string]bool{}
	for len(travs) > 0 {
		names, all := referenced(travs, "local")
		if all {
			return nil
		}
		travs = nil
		for name := range names {
			if _, ok := s.Config.Locals[name]; ok && !need[name] {
				need[name] = true
				travs = append(travs, s.Config.localVars(name)...)
			}
		}
	}
	return need
}

// refersTo reports whether one of travs is rooted at root.
func refersTo(travs []hcl.Traversal, root string) bool {
	for _, t := range travs {
		if t.RootName() == root {
			return true
		}
	}
	return false
}

func eachCtx(ctx *hcl.EvalContext, in Instance) *hcl.EvalContext {
	if in.Key == cty.NilVal {
		return ctx
	}
	child := ctx.NewChild()
	key, val := in.Key, in.Value
	if val == cty.NilVal {
		val = in.Key
	}
	if KeyHasPassword(key) {
		// A URL key's password is a secret: each.key (and each.value
		// of a set, the same string) is sensitive.
		if val.RawEquals(key) {
			val = val.Mark(MarkSensitive)
		}
		key = key.Mark(MarkSensitive)
	}
	child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": key, "value": val})}
	return child
}

// Expand returns the step's instances: one Instance{Key: NilVal} without
// for_each, one per key with it (sorted by key). known is false when the
// for_each value is not known yet (plan time).
func (s *Scope) Expand(st *Step) (insts []Instance, known bool, diags hcl.Diagnostics) {
	if st.ForEach == nil {
		return []Instance{{Key: cty.NilVal, Value: cty.NilVal}}, true, nil
	}
	ctx, diags := s.ctx(st.ForEach)
	insts, known, _, d := expandForEach(st, ctx)
	return insts, known, append(diags, d...)
}

// KeyHasPassword reports whether key is a string holding a URL with a
// password, which Address redacts.
func KeyHasPassword(key cty.Value) bool {
	if key == cty.NilVal || !key.IsKnown() || key.IsNull() {
		return false
	}
	key, _ = key.Unmark()
	if key.Type() != cty.String {
		return false
	}
	_, ok := mask.RedactURL(key.AsString())
	return ok
}

// sameAddress returns a diagnostic when two of insts (sorted by key) have
// the same address once the passwords of their URL keys are redacted:
// their journal records would be confused. Numbering or hashing them
// apart would either change addresses when a key is added before a
// resume, or journal a guessable digest of the password.
func sameAddress(st *Step, insts []Instance) *hcl.Diagnostic {
	var seen map[string]bool
	for _, in := range insts {
		if !KeyHasPassword(in.Key) {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
			for _, o := range insts {
				if !KeyHasPassword(o.Key) {
					seen[Address(st.Name, o.Key)] = true
				}
			}
		}
		addr := Address(st.Name, in.Key)
		if seen[addr] {
			return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid for_each",
				Detail:  fmt.Sprintf("Two keys of the for_each of step %q have the address %s once the password of their URL is redacted; addresses are journaled and shown, so they cannot hold it. Key the instances by what tells them apart without the password (a map keyed by host, say).", st.Name, addr),
				Subject: st.ForEach.Range().Ptr()}
		}
		seen[addr] = true
	}
	return nil
}

func expandValue(st *Step, v cty.Value, diags hcl.Diagnostics) ([]Instance, bool, hcl.Diagnostics) {
	rng := st.ForEach.Range().Ptr()
	bad := func(detail string) ([]Instance, bool, hcl.Diagnostics) {
		return nil, false, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid for_each", Detail: detail, Subject: rng})
	}
	if v.IsMarked() {
		return bad(fmt.Sprintf("The for_each of step %q is sensitive; instance keys appear in addresses and logs, so they cannot be secret.", st.Name))
	}
	if !v.IsKnown() {
		return nil, false, diags
	}
	if v.IsNull() {
		return bad(fmt.Sprintf("The for_each of step %q is null; give it a map or a set of strings.", st.Name))
	}
	ty := v.Type()
	switch {
	case ty.IsMapType() || ty.IsObjectType():
		// cty lists the elements of a map or object sorted by key.
		insts := make([]Instance, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			insts = append(insts, Instance{Key: k, Value: e})
		}
		return insts, true, diags
	case ty.IsSetType():
		if !ty.ElementType().Equals(cty.String) && ty.ElementType() != cty.DynamicPseudoType {
			return bad(fmt.Sprintf("The for_each of step %q is a set of %s; it must be a set of strings.", st.Name, ty.ElementType().FriendlyName()))
		}
		// cty sorts a set's elements each time they are listed (see
		// expandForEach): list them once.
		elems := v.AsValueSlice()
		for _, e := range elems {
			if !e.IsKnown() {
				return nil, false, diags
			}
		}
		insts := make([]Instance, 0, len(elems))
		for _, e := range elems {
			if e.IsMarked() {
				return bad(fmt.Sprintf("The for_each of step %q holds sensitive values; instance keys cannot be secret.", st.Name))
			}
			if e.IsNull() || e.Type() != cty.String {
				return bad(fmt.Sprintf("The for_each of step %q holds a null or non-string element.", st.Name))
			}
			insts = append(insts, Instance{Key: e, Value: e})
		}
		sort.Slice(insts, func(i, j int) bool { return insts[i].Key.AsString() < insts[j].Key.AsString() })
		return insts, true, diags
	case ty.IsListType() || ty.IsTupleType():
		return bad(fmt.Sprintf("The for_each of step %q is a list; use a map, or a set of strings: for_each = toset(...).", st.Name))
	}
	return bad(fmt.Sprintf("The for_each of step %q is %s; it must be a map or a set of strings.", st.Name, ty.FriendlyName()))
}

// When evaluates the step's `when` for an instance. run is true without a
// `when`; known is false when the condition is not known yet.
func (s *Scope) When(st *Step, in Instance) (run bool, known bool, diags hcl.Diagnostics) {
	if st.When == nil {
		return true, true, nil
	}
	ctx, diags := s.ctx(st.When)
	return s.whenIn(st, in, ctx, diags)
}

// whenIn is When with the context of st's expressions built by the caller,
// once for every instance.
func (s *Scope) whenIn(st *Step, in Instance, ctx *hcl.EvalContext, diags hcl.Diagnostics) (run bool, known bool, _ hcl.Diagnostics) {
	if st.When == nil {
		return true, true, diags
	}
	v, d := st.When.Value(eachCtx(ctx, in))
	diags = append(diags, d...)
	if d.HasErrors() {
		return false, false, diags
	}
	v, _ = v.Unmark()
	if !v.IsKnown() {
		return false, false, diags
	}
	bv, err := convert.Convert(v, cty.Bool)
	if err != nil || bv.IsNull() {
		return false, false, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid when",
			Detail: fmt.Sprintf("The when of step %q must be true or false.", st.Name), Subject: st.When.Range().Ptr()})
	}
	return bv.True(), true, diags
}

// Inputs evaluates the step's `with` for an instance. Marks are kept and
// the result may hold unknowns at plan time. With Scope.Schemas set it is
// converted to the action's input type.
func (s *Scope) Inputs(st *Step, in Instance) (cty.Value, hcl.Diagnostics) {
	if st.With == nil {
		return s.convertInputs(cty.EmptyObjectVal, st.Plugin, st.Action, nil, nil)
	}
	ctx, diags := s.ctx(st.With)
	return s.inputsIn(st, in, ctx, diags)
}

// inputsIn is Inputs with the context of st's expressions built by the
// caller, once for every instance.
func (s *Scope) inputsIn(st *Step, in Instance, ctx *hcl.EvalContext, diags hcl.Diagnostics) (cty.Value, hcl.Diagnostics) {
	if st.With == nil {
		return s.convertInputs(cty.EmptyObjectVal, st.Plugin, st.Action, nil, diags)
	}
	v, d := evalWith(st.With, eachCtx(ctx, in), fmt.Sprintf("step %q", st.Name))
	diags = append(diags, d...)
	if d.HasErrors() {
		return cty.DynamicVal, diags
	}
	v, diags = s.convertInputs(v, st.Plugin, st.Action, st.With, diags)
	return storable(v, diags, "with", fmt.Sprintf("step %q", st.Name), st.With.Range())
}

func evalWith(expr hcl.Expression, ctx *hcl.EvalContext, what string) (cty.Value, hcl.Diagnostics) {
	if expr == nil {
		return cty.EmptyObjectVal, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return v, diags
	}
	uv, _ := v.Unmark()
	if uv.IsKnown() && !uv.IsNull() && !uv.Type().IsObjectType() && !uv.Type().IsMapType() {
		return v, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid with",
			Detail:  fmt.Sprintf("The with of %s must be an object of the action's inputs, like with = { name = \"value\" }; got %s.", what, uv.Type().FriendlyName()),
			Subject: expr.Range().Ptr()})
	}
	if uv.IsKnown() && uv.IsNull() {
		return cty.EmptyObjectVal, diags
	}
	return v, diags
}

func (s *Scope) convertInputs(v cty.Value, plugin, action string, expr hcl.Expression, diags hcl.Diagnostics) (cty.Value, hcl.Diagnostics) {
	if s.Schemas == nil {
		return v, diags
	}
	schema, ok, err := s.Schemas.ActionSchema(plugin, action)
	if err != nil || !ok {
		return v, diags
	}
	typ, known := s.Config.inputs.get(plugin, action, schema)
	empty := v.RawEquals(cty.EmptyObjectVal)
	if empty && known != cty.NilVal {
		return known, diags
	}
	cv, err := convertMarked(v, typ)
	if err != nil {
		rng := hcl.Range{}
		if expr != nil {
			rng = expr.Range()
		}
		return v, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid inputs",
			Detail: fmt.Sprintf("The inputs of %s.%s do not match its schema: %s.", plugin, action, err), Subject: rng.Ptr()})
	}
	out := MarkAttrs(schema.Inputs, cv)
	if empty {
		s.Config.inputs.setEmpty(plugin, action, out)
	}
	return out, diags
}

// inputCache remembers, per action, its input type and the inputs of a
// step without `with`: building them was a tenth of the engine's CPU per
// step of a large runbook. Safe for concurrent use; a nil cache remembers
// nothing.
type inputCache struct {
	mu sync.Mutex
	m  map[string]actionInputs // by "plugin.action"; guarded by mu
}

type actionInputs struct {
	typ   cty.Type
	empty cty.Value // the inputs of a step without `with`; NilVal until known
}

// get returns the action's input type and, once known, the inputs of a
// step without `with` (else cty.NilVal).
func (c *inputCache) get(plugin, action string, schema sdk.ActionSchema) (cty.Type, cty.Value) {
	if c == nil {
		return schema.InputType(), cty.NilVal
	}
	key := plugin + "." + action
	c.mu.Lock()
	defer c.mu.Unlock()
	ai, ok := c.m[key]
	if !ok {
		ai = actionInputs{typ: schema.InputType()}
		c.m[key] = ai
	}
	return ai.typ, ai.empty
}

func (c *inputCache) setEmpty(plugin, action string, v cty.Value) {
	if c == nil {
		return
	}
	key := plugin + "." + action
	c.mu.Lock()
	defer c.mu.Unlock()
	ai := c.m[key]
	ai.empty = v
	c.m[key] = ai
}

// convertMarked converts a value that may carry marks deep inside.
func convertMarked(v cty.Value, ty cty.Type) (cty.Value, error) {
	uv, pvm := v.UnmarkDeepWithPaths()
	cv, err := convert.Convert(uv, ty)
	if err != nil {
		return cty.NilVal, err
	}
	// Conversion may turn objects into maps and tuples into lists or sets:
	// follow each marked path in the converted value, marking the deepest
	// part that still exists.
	keep := make([]cty.PathValueMarks, 0, len(pvm))
	for _, p := range pvm {
		keep = append(keep, cty.PathValueMarks{Path: adjustPath(cv, p.Path), Marks: p.Marks})
	}
	return cv.MarkWithPaths(keep), nil
}

// adjustPath rewrites path for a converted value: attribute steps become
// index steps on maps; a step that cannot be followed (e.g. into a set)
// ends the path there.
func adjustPath(v cty.Value, path cty.Path) cty.Path {
	out := make(cty.Path, 0, len(path))
	cur := v
	for _, step := range path {
		if !cur.IsKnown() || cur.IsNull() {
			return out
		}
		ty := cur.Type()
		var next cty.PathStep
		switch s := step.(type) {
		case cty.GetAttrStep:
			switch {
			case ty.IsObjectType() && ty.HasAttribute(s.Name):
				next = s
			case ty.IsMapType():
				next = cty.IndexStep{Key: cty.StringVal(s.Name)}
			default:
				return out
			}
		case cty.IndexStep:
			switch {
			case ty.IsListType() || ty.IsTupleType() || ty.IsMapType():
				next = s
			case ty.IsObjectType() && s.Key.Type() == cty.String && ty.HasAttribute(s.Key.AsString()):
				next = cty.GetAttrStep{Name: s.Key.AsString()}
			default:
				return out
			}
		default:
			return out
		}
		nv, err := next.Apply(cur)
		if err != nil {
			return out
		}
		out = append(out, next)
		cur = nv
	}
	return out
}

// RollbackInputs evaluates the rollback's `with` for an instance, with
// self.inputs and self.outputs set to what the step received and returned.
func (s *Scope) RollbackInputs(st *Step, in Instance, inputs, outputs cty.Value) (cty.Value, hcl.Diagnostics) {
	if st.Rollback == nil || st.Rollback.Native {
		return inputs, nil
	}
	ctx, diags := s.ctx(st.Rollback.With)
	if outputs == cty.NilVal || outputs.IsNull() {
		// The step failed before returning outputs: every output is null.
		outputs = cty.EmptyObjectVal
		if s.Schemas != nil {
			if sc, ok, err := s.Schemas.ActionSchema(st.Plugin, st.Action); err == nil && ok && len(sc.Outputs) > 0 {
				m := make(map[string]cty.Value, len(sc.Outputs))
				for _, a := range sc.Outputs {
					m[a.Name] = cty.NullVal(a.Type)
				}
				outputs = cty.ObjectVal(m)
			}
		}
	}
	child := eachCtx(ctx, in).NewChild()
	child.Variables = map[string]cty.Value{"self": StepValue(inputs, outputs)}
	v, d := evalWith(st.Rollback.With, child, fmt.Sprintf("the rollback of step %q", st.Name))
	diags = append(diags, d...)
	if d.HasErrors() {
		return cty.DynamicVal, diags
	}
	v, diags = s.convertInputs(v, st.Rollback.Plugin, st.Rollback.Action, st.Rollback.With, diags)
	if st.Rollback.With == nil {
		return v, diags
	}
	return storable(v, diags, "rollback.with", fmt.Sprintf("step %q", st.Name), st.Rollback.With.Range())
}

// Outputs evaluates every output; sensitive ones are marked.
func (s *Scope) Outputs() (map[string]cty.Value, hcl.Diagnostics) {
	out := map[string]cty.Value{}
	if s.Config == nil {
		return out, nil
	}
	exprs := make([]hcl.Expression, 0, len(s.Config.Outputs))
	for _, o := range s.Config.Outputs {
		exprs = append(exprs, o.Value)
	}
	ctx, diags := s.ctx(exprs...)
	for _, name := range mapKeys(s.Config.Outputs) {
		o := s.Config.Outputs[name]
		v, d := o.Value.Value(ctx)
		v, d = storable(v, d, "value", fmt.Sprintf("output %q", name), o.Value.Range())
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if o.Sensitive {
			v = v.Mark(MarkSensitive)
		}
		out[name] = v
	}
	return out, diags
}

// Lock evaluates the runbook's lock key ("" when there is none).
func (s *Scope) Lock() (string, hcl.Diagnostics) {
	return s.lockKey(false)
}

// lockKey evaluates the lock key; with allowUnknown (plan time) an unknown
// key is KnownAfterApply rather than an error.
func (s *Scope) lockKey(allowUnknown bool) (string, hcl.Diagnostics) {
	if s.Config == nil || s.Config.Runbook == nil || s.Config.Runbook.Lock == nil {
		return "", nil
	}
	expr := s.Config.Runbook.Lock
	ctx, diags := s.ctx(expr)
	v, d := expr.Value(ctx)
	diags = append(diags, d...)
	if d.HasErrors() {
		return "", diags
	}
	bad := func(detail string) (string, hcl.Diagnostics) {
		return "", append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid lock", Detail: detail, Subject: expr.Range().Ptr()})
	}
	if v.IsMarked() {
		return bad("The lock key is shown in logs and run records, so it cannot use sensitive values.")
	}
	if !v.IsWhollyKnown() {
		if allowUnknown {
			return KnownAfterApply, diags
		}
		return bad("The lock key must be known before the run starts; use only variables and constants.")
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() {
		return bad("The lock key must be a string.")
	}
	return sv.AsString(), diags
}

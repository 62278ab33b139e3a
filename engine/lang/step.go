package lang

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/gocty"
)

// stepArgs are the engine's own arguments of a step (phase 1).
var stepAttrs = []hcl.AttributeSchema{
	{Name: "with"}, {Name: "depends_on"}, {Name: "for_each"}, {Name: "when"},
	{Name: "timeout"}, {Name: "on_failure"}, {Name: "always"},
}

// decodeStep decodes a step block's engine arguments. The `with` object is
// kept as an expression; Check decodes it against the action's schema.
func decodeStep(b *hcl.Block) (*Step, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	s := &Step{Name: b.Labels[1], DeclRange: b.DefRange, TypeRange: b.LabelRanges[0], OnFailure: OnFailureRollback}
	diags = append(diags, validName("step", s.Name, b.LabelRanges[1])...)
	plugin, action, ok := splitActionType(b.Labels[0])
	if !ok {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid step type",
			Detail:   fmt.Sprintf("The step type %q must be PLUGIN.ACTION, for example \"core.exec\".", b.Labels[0]),
			Subject:  b.LabelRanges[0].Ptr(),
		})
	}
	s.Plugin, s.Action = plugin, action

	schema := &hcl.BodySchema{Attributes: stepAttrs, Blocks: []hcl.BlockHeaderSchema{{Type: "retry"}}}
	native, nativeDiags, asAttr := probeRollback(b.Body)
	diags = append(diags, nativeDiags...)
	if asAttr {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: "rollback"})
	} else {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: "rollback"})
	}
	content, d := b.Body.Content(schema)
	diags = append(diags, d...)

	if a, ok := content.Attributes["with"]; ok {
		s.With = a.Expr
	}
	if a, ok := content.Attributes["for_each"]; ok {
		s.ForEach = a.Expr
	}
	if a, ok := content.Attributes["when"]; ok {
		s.When = a.Expr
	}
	if a, ok := content.Attributes["depends_on"]; ok {
		deps, d := decodeDependsOn(a)
		diags = append(diags, d.Diagnostics...)
		s.DependsOn = deps
		s.dependsOnRanges = map[string]hcl.Range{}
		for i, r := range d.ranges {
			s.dependsOnRanges[deps[i]] = r
		}
	}
	if a, ok := content.Attributes["timeout"]; ok {
		diags = append(diags, constDuration(a, &s.Timeout)...)
	}
	if a, ok := content.Attributes["on_failure"]; ok {
		diags = append(diags, constEnum(a, &s.OnFailure, OnFailureRollback, OnFailureContinue, OnFailureAbort)...)
	}
	if a, ok := content.Attributes["always"]; ok {
		diags = append(diags, constBool(a, &s.Always)...)
	}
	if asAttr && native != nil {
		native.DeclRange = content.Attributes["rollback"].Range
		s.Rollback = native
	}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "retry":
			if s.Retry != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate retry block",
					Detail: "A step has at most one retry block.", Subject: blk.DefRange.Ptr()})
				continue
			}
			r, d := decodeRetry(blk)
			diags = append(diags, d...)
			s.Retry = r
		case "rollback":
			if s.Rollback != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate rollback block",
					Detail: "A step has at most one rollback.", Subject: blk.DefRange.Ptr()})
				continue
			}
			r, d := decodeRollback(blk)
			diags = append(diags, d...)
			s.Rollback = r
		}
	}
	return s, diags
}

func splitActionType(t string) (plugin, action string, ok bool) {
	plugin, action, ok = strings.Cut(t, ".")
	if !ok || !validIdentifier(plugin) || !validIdentifier(action) {
		return plugin, action, false
	}
	return plugin, action, true
}

// probeRollback finds out whether `rollback` is written as an attribute
// (`rollback = native`) or as a block. In JSON both are properties, so the
// value decides: a string or keyword is the attribute form.
func probeRollback(body hcl.Body) (native *Rollback, diags hcl.Diagnostics, asAttr bool) {
	if sb, ok := body.(*hclsyntax.Body); ok {
		a, ok := sb.Attributes["rollback"]
		if !ok {
			return nil, nil, false
		}
		return nativeRollback(a.Expr, a.SrcRange)
	}
	probe, _, _ := body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "rollback"}}})
	a, ok := probe.Attributes["rollback"]
	if !ok {
		return nil, nil, false
	}
	if kw := hcl.ExprAsKeyword(a.Expr); kw != "" {
		return nativeRollback(a.Expr, a.Range)
	}
	return nil, nil, false
}

func nativeRollback(expr hcl.Expression, rng hcl.Range) (*Rollback, hcl.Diagnostics, bool) {
	kw := hcl.ExprAsKeyword(expr)
	if kw == "" {
		if v, d := expr.Value(nil); !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
			kw = v.AsString()
		}
	}
	if kw != "native" {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid rollback",
			Detail:   "rollback is either `rollback = native` (the plugin's own undo) or a block: rollback { action = PLUGIN.ACTION, with = {...} }.",
			Subject:  expr.Range().Ptr(),
		}}, true
	}
	return &Rollback{Native: true, DeclRange: rng}, nil, true
}

func decodeRollback(b *hcl.Block) (*Rollback, hcl.Diagnostics) {
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "action", Required: true}, {Name: "with"},
	}})
	r := &Rollback{DeclRange: b.DefRange}
	if a, ok := content.Attributes["with"]; ok {
		r.With = a.Expr
	}
	a, ok := content.Attributes["action"]
	if !ok {
		return r, diags
	}
	name := ""
	if t, d := hcl.AbsTraversalForExpr(a.Expr); !d.HasErrors() {
		name = traversalString(t)
	} else if v, d := a.Expr.Value(nil); !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
		name = v.AsString()
	}
	plugin, action, ok := splitActionType(name)
	if !ok {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid rollback action",
			Detail:   "The rollback action must be PLUGIN.ACTION, for example `action = core.exec`.",
			Subject:  a.Expr.Range().Ptr(),
		})
		return r, diags
	}
	r.Plugin, r.Action = plugin, action
	return r, diags
}

// traversalString renders a traversal of plain attribute steps as a.b.c;
// anything else yields "".
func traversalString(t hcl.Traversal) string {
	var parts []string
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, s.Name)
		case hcl.TraverseAttr:
			parts = append(parts, s.Name)
		default:
			return ""
		}
	}
	return strings.Join(parts, ".")
}

type dependsOnDiags struct {
	hcl.Diagnostics
	ranges []hcl.Range
}

func decodeDependsOn(a *hcl.Attribute) ([]string, dependsOnDiags) {
	var out dependsOnDiags
	exprs, d := hcl.ExprList(a.Expr)
	out.Diagnostics = append(out.Diagnostics, d...)
	var deps []string
	for _, e := range exprs {
		t, d := hcl.AbsTraversalForExpr(e)
		if d.HasErrors() || t.RootName() != "step" || len(t) < 2 {
			out.Diagnostics = append(out.Diagnostics, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid depends_on entry",
				Detail:   "Each depends_on entry is a step reference, for example depends_on = [step.backup].",
				Subject:  e.Range().Ptr(),
			})
			continue
		}
		attr, ok := t[1].(hcl.TraverseAttr)
		if !ok {
			out.Diagnostics = append(out.Diagnostics, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Invalid depends_on entry",
				Detail: "Write step.NAME.", Subject: e.Range().Ptr(),
			})
			continue
		}
		deps = append(deps, attr.Name)
		out.ranges = append(out.ranges, t.SourceRange())
	}
	return deps, out
}

func decodeRetry(b *hcl.Block) (*Retry, hcl.Diagnostics) {
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "attempts", Required: true}, {Name: "delay"}, {Name: "max_delay"}, {Name: "backoff"}, {Name: "retry_on"},
	}})
	r := &Retry{Attempts: 1, Delay: time.Second, Backoff: "fixed"}
	if a, ok := content.Attributes["attempts"]; ok {
		var n int
		if d := constInt(a, &n); d.HasErrors() {
			diags = append(diags, d...)
		} else if n < 1 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid retry attempts",
				Detail: "attempts counts every try including the first; it must be at least 1.", Subject: a.Expr.Range().Ptr()})
		} else {
			r.Attempts = n
		}
	}
	if a, ok := content.Attributes["delay"]; ok {
		diags = append(diags, constDuration(a, &r.Delay)...)
	}
	if a, ok := content.Attributes["max_delay"]; ok {
		diags = append(diags, constDuration(a, &r.MaxDelay)...)
	}
	if a, ok := content.Attributes["backoff"]; ok {
		diags = append(diags, constEnum(a, &r.Backoff, "fixed", "exponential")...)
	}
	if a, ok := content.Attributes["retry_on"]; ok {
		on := "retryable"
		diags = append(diags, constEnum(a, &on, "retryable", "any")...)
		r.AnyError = on == "any"
	}
	return r, diags
}

// constValue evaluates an attribute that must be a constant of type ty.
func constValue(a *hcl.Attribute, ty cty.Type, what string) (cty.Value, hcl.Diagnostics) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil || cv.IsNull() || !cv.IsWhollyKnown() {
		msg := "null"
		if err != nil {
			msg = err.Error()
		}
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s", a.Name),
			Detail:   fmt.Sprintf("%s must be %s: %s.", a.Name, what, msg),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	return cv, nil
}

func constString(a *hcl.Attribute, out *string) hcl.Diagnostics {
	v, diags := constValue(a, cty.String, "a string")
	if !diags.HasErrors() {
		*out = v.AsString()
	}
	return diags
}

func constBool(a *hcl.Attribute, out *bool) hcl.Diagnostics {
	v, diags := constValue(a, cty.Bool, "true or false")
	if !diags.HasErrors() {
		*out = v.True()
	}
	return diags
}

func constInt(a *hcl.Attribute, out *int) hcl.Diagnostics {
	v, diags := constValue(a, cty.Number, "a whole number")
	if diags.HasErrors() {
		return diags
	}
	if err := gocty.FromCtyValue(v, out); err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s", a.Name),
			Detail: fmt.Sprintf("%s must be a whole number.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	return nil
}

func constDuration(a *hcl.Attribute, out *time.Duration) hcl.Diagnostics {
	var s string
	if d := constString(a, &s); d.HasErrors() {
		return d
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur < 0 {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid %s", a.Name),
			Detail:   fmt.Sprintf("%q is not a duration: write a number with a unit, for example \"30s\", \"5m\" or \"1h30m\".", s),
			Subject:  a.Expr.Range().Ptr(),
		}}
	}
	*out = dur
	return nil
}

func constEnum(a *hcl.Attribute, out *string, allowed ...string) hcl.Diagnostics {
	var s string
	if d := constString(a, &s); d.HasErrors() {
		return d
	}
	for _, x := range allowed {
		if s == x {
			*out = s
			return nil
		}
	}
	detail := fmt.Sprintf("%s must be one of %s.", a.Name, quoteList(allowed))
	if sug := suggest(s, allowed); sug != "" {
		detail += fmt.Sprintf(" Did you mean %q?", sug)
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s", a.Name), Detail: detail, Subject: a.Expr.Range().Ptr()}}
}

func quoteList(xs []string) string { return joinQuoted(xs, "or") }

// quoteAll lists every element: "a", "b" and "c".
func quoteAll(xs []string) string { return joinQuoted(xs, "and") }

func joinQuoted(xs []string, conj string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

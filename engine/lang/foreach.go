package lang

import (
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// expandForEach evaluates the for_each of st in ctx and lists its
// instances, sorted by key. ty is the for_each's type (cty.NilType after an
// error); known is false when the instances are not known yet.
//
// cty sorts a set's elements every time they are listed, comparing them
// with a costly equality test (100,000 strings: 1.5 s of CPU, more than the
// rest of validate), so the usual for_each = toset(LIST) is listed from
// LIST, once, without building the set.
func expandForEach(st *Step, ctx *hcl.EvalContext) (insts []Instance, known bool, ty cty.Type, diags hcl.Diagnostics) {
	insts, known, ty, diags = listForEach(st, ctx)
	if d := sameAddress(st, insts); d != nil {
		return nil, false, cty.NilType, append(diags, d)
	}
	return insts, known, ty, diags
}

// listForEach is expandForEach without the check of addresses.
func listForEach(st *Step, ctx *hcl.EvalContext) (insts []Instance, known bool, ty cty.Type, diags hcl.Diagnostics) {
	if arg, ok := tosetArg(st.ForEach); ok {
		lv, d := arg.Value(ctx)
		if d.HasErrors() {
			return nil, false, cty.NilType, d
		}
		if keys, ok := setOfStrings(lv); ok {
			insts = make([]Instance, len(keys))
			for i, k := range keys {
				insts[i] = Instance{Key: k, Value: k}
			}
			return insts, true, cty.Set(cty.String), d
		}
		// Not a list of known strings: toset converts, marks or leaves
		// unknown what it holds; evaluate it whole below.
	}
	v, diags := st.ForEach.Value(ctx)
	if diags.HasErrors() {
		return nil, false, cty.NilType, diags
	}
	insts, known, diags = expandValue(st, v, diags)
	return insts, known, v.Type(), diags
}

// tosetArg returns LIST when expr is the call toset(LIST).
func tosetArg(expr hcl.Expression) (hcl.Expression, bool) {
	call, ok := expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "toset" || len(call.Args) != 1 || call.ExpandFinal {
		return nil, false
	}
	return call.Args[0], true
}

// setOfStrings returns the elements toset(v) has, sorted and without
// duplicates, when v is a known, non-empty list or tuple of known,
// non-null strings, none of them marked; ok is false otherwise.
func setOfStrings(v cty.Value) (elems []cty.Value, ok bool) {
	if v.IsMarked() || !v.IsKnown() || v.IsNull() {
		return nil, false
	}
	if ty := v.Type(); !ty.IsListType() && !ty.IsTupleType() || v.LengthInt() == 0 {
		return nil, false
	}
	elems = make([]cty.Value, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsMarked() || !e.IsKnown() || e.IsNull() || e.Type() != cty.String {
			return nil, false
		}
		elems = append(elems, e)
	}
	slices.SortFunc(elems, func(a, b cty.Value) int { return strings.Compare(a.AsString(), b.AsString()) })
	return slices.CompactFunc(elems, func(a, b cty.Value) bool { return a.AsString() == b.AsString() }), true
}

package run

import (
	"math/big"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/lang"
)

// Sensitive is how a sensitive value is rendered.
const Sensitive = "(sensitive)"

// Render turns an object value into JSON-compatible Go values for events
// and summaries; sensitive parts become "(sensitive)".
func Render(v cty.Value) map[string]any {
	if v == cty.NilVal || v.IsNull() || !v.IsKnown() {
		return nil
	}
	r, ok := RenderValue(v).(map[string]any)
	if !ok {
		return nil
	}
	return r
}

// RenderValue renders any value (see Render).
func RenderValue(v cty.Value) any {
	if v.HasMark(lang.MarkSensitive) {
		return Sensitive
	}
	v, _ = v.Unmark()
	if !v.IsKnown() {
		return "(unknown)"
	}
	if v.IsNull() {
		return nil
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString()
	case t == cty.Bool:
		return v.True()
	case t == cty.Number:
		f := v.AsBigFloat()
		if f.IsInt() {
			if i, acc := f.Int64(); acc == big.Exact {
				return i
			}
		}
		x, _ := f.Float64()
		return x
	case t.IsObjectType() || t.IsMapType():
		m := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			m[k.AsString()] = RenderValue(e)
		}
		return m
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		var l []any
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			l = append(l, RenderValue(e))
		}
		return l
	}
	return nil
}

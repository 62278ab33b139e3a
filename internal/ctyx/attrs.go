package ctyx

import "github.com/zclconf/go-cty/cty"

// Attr returns the attribute name of the object in, unmarked, or a null
// value when in is null, unknown, not an object or without it.
func Attr(in cty.Value, name string) cty.Value {
	if in == cty.NilVal || in.IsNull() || !in.IsKnown() {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	in, _ = in.UnmarkDeep()
	if !in.Type().IsObjectType() || !in.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return in.GetAttr(name)
}

// StringAttr returns a known string attribute, or "".
func StringAttr(in cty.Value, name string) string {
	v := Attr(in, name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// BoolAttr returns a known bool attribute, or def.
func BoolAttr(in cty.Value, name string, def bool) bool {
	v := Attr(in, name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Bool {
		return def
	}
	return v.True()
}

// IntAttr returns a known number attribute, truncated to an integer, and
// true; or def and false when there is none.
func IntAttr(in cty.Value, name string, def int64) (int64, bool) {
	v := Attr(in, name)
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return def, false
	}
	i, _ := v.AsBigFloat().Int64()
	return i, true
}

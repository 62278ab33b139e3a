package sdk

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Decode copies an inputs object into a Go struct whose fields carry
// `cty:"name"` tags (gocty). Null attributes leave the zero value.
//
//	var in struct {
//		URL      string `cty:"url"`
//		Password string `cty:"password"`
//	}
//	if err := sdk.Decode(req.Inputs, &in); err != nil { ... }
func Decode(v cty.Value, dst any) error {
	if err := gocty.FromCtyValue(stripNulls(v), dst); err != nil {
		return &Error{Kind: KindInvalid, Err: fmt.Errorf("decode inputs: %w", err)}
	}
	return nil
}

// stripNulls keeps the object's shape but turns null primitives into zero
// values gocty can assign; null collections become empty ones.
func stripNulls(v cty.Value) cty.Value {
	v, _ = v.UnmarkDeep()
	out, _ := cty.Transform(v, func(p cty.Path, v cty.Value) (cty.Value, error) {
		if !v.IsNull() {
			return v, nil
		}
		t := v.Type()
		switch {
		case t == cty.String:
			return cty.StringVal(""), nil
		case t == cty.Number:
			return cty.Zero, nil
		case t == cty.Bool:
			return cty.False, nil
		case t.IsListType():
			return cty.ListValEmpty(t.ElementType()), nil
		case t.IsSetType():
			return cty.SetValEmpty(t.ElementType()), nil
		case t.IsMapType():
			return cty.MapValEmpty(t.ElementType()), nil
		case t.IsObjectType() || t.IsTupleType():
			return zeroValue(t), nil
		}
		return v, nil
	})
	return out
}

// zeroValue is the value gocty decodes into a Go zero value of type t
// (null for "any").
func zeroValue(t cty.Type) cty.Value {
	switch {
	case t == cty.String:
		return cty.StringVal("")
	case t == cty.Number:
		return cty.Zero
	case t == cty.Bool:
		return cty.False
	case t.IsListType():
		return cty.ListValEmpty(t.ElementType())
	case t.IsSetType():
		return cty.SetValEmpty(t.ElementType())
	case t.IsMapType():
		return cty.MapValEmpty(t.ElementType())
	case t.IsObjectType():
		attrs := make(map[string]cty.Value, len(t.AttributeTypes()))
		for n, at := range t.AttributeTypes() {
			attrs[n] = zeroValue(at)
		}
		return cty.ObjectVal(attrs)
	case t.IsTupleType():
		elems := make([]cty.Value, len(t.TupleElementTypes()))
		for i, et := range t.TupleElementTypes() {
			elems[i] = zeroValue(et)
		}
		return cty.TupleVal(elems)
	}
	return cty.NullVal(t)
}

// Encode builds an outputs object from a Go struct with `cty` tags, using
// the action's output types.
func Encode(s ActionSchema, src any) (cty.Value, error) {
	v, err := gocty.ToCtyValue(src, s.OutputType())
	if err != nil {
		return cty.NilVal, fmt.Errorf("encode outputs: %w", err)
	}
	return v, nil
}

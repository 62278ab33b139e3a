package sdk

import (
	"fmt"
	"reflect"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
)

// Decode copies an inputs object into a Go struct whose fields carry
// `cty:"name"` tags (gocty). A null attribute leaves a pointer field nil,
// so that an optional input left out can be told from one set to its zero
// value; into any other field it decodes as the zero value.
//
//	var in struct {
//		URL      string `cty:"url"`
//		Password string `cty:"password"`
//		Timeout  *int   `cty:"timeout"` // nil when not given
//	}
//	if err := sdk.Decode(req.Inputs, &in); err != nil { ... }
func Decode(v cty.Value, dst any) error {
	v, _ = v.UnmarkDeep()
	// dst points to the value decoded into, which is what rt describes.
	if rt := reflect.TypeOf(dst); rt != nil && rt.Kind() == reflect.Pointer {
		v = stripNulls(v, rt.Elem())
	}
	if err := gocty.FromCtyValue(v, dst); err != nil {
		return &Error{Kind: KindInvalid, Err: fmt.Errorf("decode inputs: %w", err)}
	}
	return nil
}

var ctyValueType = reflect.TypeOf(cty.Value{})

// stripNulls turns the nulls inside v that gocty cannot assign into zero
// values, following the Go type rt that v decodes into: a null bound for a
// pointer (or a cty.Value, or an interface) stays null, which gocty decodes
// as nil (or the null itself); a null bound for anything else becomes the
// zero value of its type (an empty collection, an object of zero values).
func stripNulls(v cty.Value, rt reflect.Type) cty.Value {
	for rt != nil && rt.Kind() == reflect.Pointer {
		if v.IsNull() {
			return v
		}
		rt = rt.Elem()
	}
	if rt == nil || rt == ctyValueType || rt.Kind() == reflect.Interface || !v.IsKnown() {
		return v
	}
	t := v.Type()
	if v.IsNull() {
		if !t.IsObjectType() || rt.Kind() != reflect.Struct {
			return zeroValue(t)
		}
		// An object of nulls, each decided by its own field.
		attrs := make(map[string]cty.Value, len(t.AttributeTypes()))
		for n, at := range t.AttributeTypes() {
			attrs[n] = cty.NullVal(at)
		}
		v = cty.ObjectVal(attrs)
	}
	switch {
	case t.IsObjectType() && rt.Kind() == reflect.Struct:
		fields := ctyFields(rt)
		attrs := make(map[string]cty.Value, len(t.AttributeTypes()))
		for n := range t.AttributeTypes() {
			var ft reflect.Type
			if i, ok := fields[n]; ok {
				ft = rt.Field(i).Type
			}
			attrs[n] = stripNulls(v.GetAttr(n), ft)
		}
		return cty.ObjectVal(attrs)
	case t.IsObjectType() || t.IsMapType():
		if rt.Kind() != reflect.Map || v.LengthInt() == 0 {
			return v
		}
		m := make(map[string]cty.Value, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			m[k.AsString()] = stripNulls(e, rt.Elem())
		}
		if t.IsMapType() {
			return cty.MapVal(m)
		}
		return cty.ObjectVal(m)
	case t.IsListType() || t.IsSetType() || t.IsTupleType():
		if (rt.Kind() != reflect.Slice && rt.Kind() != reflect.Array) || v.LengthInt() == 0 {
			return v
		}
		elems := make([]cty.Value, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			elems = append(elems, stripNulls(e, rt.Elem()))
		}
		switch {
		case t.IsListType():
			return cty.ListVal(elems)
		case t.IsSetType():
			return cty.SetVal(elems)
		}
		return cty.TupleVal(elems)
	}
	return v
}

// ctyFields maps the `cty` tag names of struct type rt to field indexes.
func ctyFields(rt reflect.Type) map[string]int {
	out := make(map[string]int, rt.NumField())
	for i := 0; i < rt.NumField(); i++ {
		if n := rt.Field(i).Tag.Get("cty"); n != "" {
			out[n] = i
		}
	}
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

package lang

import (
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// cty converts a tuple to a list or set of "any" (and an object to a map
// of any) by unifying the element types, and sorts them first with a
// quadratic sort: toset over 100,000 strings did not finish in two
// minutes. When every element has the same type, the result's element type
// is that type, found in linear time; these helpers say so to cty.

// convertValue is convert.Convert, linear in the number of elements when
// they all have the same type or the wanted type says what they become.
// (cty unifies the elements of every tuple it converts to a list, even of
// a known type: a variable of type list(string) given a 1 MB list took two
// minutes.)
func convertValue(v cty.Value, ty cty.Type) (cty.Value, error) {
	ty = narrowType(v.Type(), ty)
	if out, ok := convertElements(v, ty); ok {
		return out, nil
	}
	return convert.Convert(v, ty)
}

// convertElements converts a known tuple to a list or a set, or a known
// object to a map, of an element type without dynamic parts, one element
// at a time. ok is false when it does not apply or an element does not
// convert: convert.Convert then says why.
func convertElements(v cty.Value, ty cty.Type) (out cty.Value, ok bool) {
	if !ty.IsCollectionType() || ty.ElementType().HasDynamicTypes() {
		return cty.NilVal, false
	}
	uv, marks := v.Unmark()
	from := uv.Type()
	seq := from.IsTupleType() && (ty.IsListType() || ty.IsSetType())
	obj := from.IsObjectType() && ty.IsMapType()
	if !seq && !obj || !uv.IsKnown() || uv.IsNull() || uv.LengthInt() == 0 {
		return cty.NilVal, false
	}
	ety := ty.ElementType()
	elems := make([]cty.Value, 0, uv.LengthInt())
	var keys []string
	for it := uv.ElementIterator(); it.Next(); {
		k, e := it.Element()
		ce, err := convertValue(e, ety)
		if err != nil {
			return cty.NilVal, false
		}
		elems = append(elems, ce)
		if obj {
			keys = append(keys, k.AsString())
		}
	}
	switch {
	case obj:
		m := make(map[string]cty.Value, len(elems))
		for i, k := range keys {
			m[k] = elems[i]
		}
		out = cty.MapVal(m)
	case ty.IsListType():
		out = cty.ListVal(elems)
	default:
		out = cty.SetVal(elems)
	}
	return out.WithMarks(marks), true
}

// narrowType returns want with an element type of "any" replaced by the
// one type every element of a value of type from has, when there is one.
func narrowType(from, want cty.Type) cty.Type {
	if !want.IsCollectionType() || want.ElementType() != cty.DynamicPseudoType {
		return want
	}
	var ety cty.Type
	switch {
	case from.IsTupleType() && (want.IsListType() || want.IsSetType()):
		ety = sameType(from.TupleElementTypes())
	case from.IsObjectType() && want.IsMapType():
		atys := from.AttributeTypes()
		types := make([]cty.Type, 0, len(atys))
		for _, t := range atys {
			types = append(types, t)
		}
		ety = sameType(types)
	}
	switch {
	case ety == cty.NilType:
		return want
	case want.IsListType():
		return cty.List(ety)
	case want.IsSetType():
		return cty.Set(ety)
	}
	return cty.Map(ety)
}

// sameType is the type all of types are, or cty.NilType when they differ,
// are none, or hold a dynamic part (unification treats those specially).
func sameType(types []cty.Type) cty.Type {
	if len(types) == 0 || types[0].HasDynamicTypes() {
		return cty.NilType
	}
	for _, t := range types[1:] {
		if !t.Equals(types[0]) {
			return cty.NilType
		}
	}
	return types[0]
}

// makeToFunc is stdlib.MakeToFunc(want) with the narrowing of narrowType.
func makeToFunc(want cty.Type) function.Function {
	inner := stdlib.MakeToFunc(want)
	narrowed := func(args []cty.Value) function.Function {
		if ty := narrowType(args[0].Type(), want); !ty.Equals(want) {
			return stdlib.MakeToFunc(ty)
		}
		return inner
	}
	return function.New(&function.Spec{
		Description: inner.Description(),
		Params:      inner.Params(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return narrowed(args).ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return narrowed(args).Call(args)
		},
	})
}

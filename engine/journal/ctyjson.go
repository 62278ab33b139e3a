package journal

import (
	"encoding/json"
	"errors"
	"sort"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// marshalValue is ctyjson.Marshal(v, t), written without the allocations
// of cty's encoder (a buffer, a string value per attribute name and a
// json.Marshal per string: most of what journaling a step's inputs and
// outputs allocated). The tests hold it to ctyjson.Marshal byte for byte;
// what it does not cover (marks, unknowns, infinities, capsules) goes to
// ctyjson.Marshal, which also words the errors.
func marshalValue(v cty.Value, t cty.Type) (json.RawMessage, error) {
	b, err := appendCtyJSON(make([]byte, 0, 64), v, t)
	if err != nil {
		return ctyjson.Marshal(v, t)
	}
	return b, nil
}

// errSlow sends a value to ctyjson.Marshal.
var errSlow = errors.New("not for the fast encoder")

func appendCtyJSON(b []byte, v cty.Value, t cty.Type) ([]byte, error) {
	if v.IsMarked() || !v.IsKnown() {
		return b, errSlow
	}
	if t == cty.DynamicPseudoType && v.Type() != cty.DynamicPseudoType {
		tj, err := typeJSON(v.Type())
		if err != nil {
			return b, err
		}
		b = append(b, `{"value":`...)
		if b, err = appendCtyJSON(b, v, v.Type()); err != nil {
			return b, err
		}
		b = append(b, `,"type":`...)
		b = append(b, tj...)
		return append(b, '}'), nil
	}
	if v.IsNull() {
		return append(b, "null"...), nil
	}
	var err error
	switch {
	case t == cty.String:
		return appendJSONString(b, v.AsString()), nil
	case t == cty.Number:
		if v.RawEquals(cty.PositiveInfinity) || v.RawEquals(cty.NegativeInfinity) {
			return b, errSlow
		}
		return v.AsBigFloat().Append(b, 'f', -1), nil
	case t == cty.Bool:
		if v.True() {
			return append(b, "true"...), nil
		}
		return append(b, "false"...), nil
	case t.IsListType(), t.IsSetType(), t.IsTupleType(), t.IsMapType():
		open, close := byte('['), byte(']')
		if t.IsMapType() {
			open, close = '{', '}'
		}
		b = append(b, open)
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			ek, ev := it.Element()
			var ety cty.Type
			switch {
			case t.IsTupleType():
				ety = t.TupleElementTypes()[i]
			case t.IsMapType():
				b = append(appendJSONString(b, ek.AsString()), ':')
				fallthrough
			default:
				ety = t.ElementType()
			}
			if b, err = appendCtyJSON(b, ev, ety); err != nil {
				return b, err
			}
		}
		return append(b, close), nil
	case t.IsObjectType():
		b = append(b, '{')
		atys := t.AttributeTypes()
		var buf [8]string
		names := buf[:0]
		for k := range atys {
			names = append(names, k)
		}
		sort.Strings(names)
		for i, k := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			if b, err = appendCtyJSON(b, v.GetAttr(k), atys[k]); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	return b, errSlow
}

package journal

import (
	"math/big"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// genValue builds a value and the type to encode it as from fuzz bytes.
func genValue(data []byte, depth int) (cty.Value, cty.Type, []byte) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		c := data[0]
		data = data[1:]
		return c
	}
	str := func() string {
		n := int(next() % 6)
		if n > len(data) {
			n = len(data)
		}
		s := string(data[:n])
		data = data[n:]
		return s
	}
	kind := next() % 12
	if depth > 3 {
		kind %= 5
	}
	switch kind {
	case 0:
		return cty.StringVal(str()), cty.String, data
	case 1:
		f := new(big.Float).SetInt64(int64(int8(next())) * int64(next()))
		if next()%2 == 0 {
			f.Quo(f, big.NewFloat(7))
		}
		return cty.NumberVal(f), cty.Number, data
	case 2:
		return cty.BoolVal(next()%2 == 0), cty.Bool, data
	case 3:
		return cty.NullVal(cty.String), cty.String, data
	case 4: // a dynamic attribute: encoded with its type
		v, _, rest := genValue(data, depth+1)
		return v, cty.DynamicPseudoType, rest
	case 5, 6:
		n := int(next() % 4)
		attrs := map[string]cty.Value{}
		types := map[string]cty.Type{}
		for range n {
			var v cty.Value
			var t cty.Type
			k := str()
			v, t, data = genValue(data, depth+1)
			attrs[k], types[k] = v, t
		}
		if len(attrs) == 0 {
			return cty.EmptyObjectVal, cty.EmptyObject, data
		}
		// The value's own type may differ from t where t is dynamic.
		return cty.ObjectVal(attrs), cty.Object(types), data
	case 7:
		n := int(next() % 4)
		var vs []cty.Value
		for range n {
			vs = append(vs, cty.StringVal(str()))
		}
		if n == 0 {
			return cty.ListValEmpty(cty.String), cty.List(cty.String), data
		}
		return cty.ListVal(vs), cty.List(cty.String), data
	case 8:
		n := int(next() % 4)
		m := map[string]cty.Value{}
		for range n {
			m[str()] = cty.NumberIntVal(int64(next()))
		}
		if len(m) == 0 {
			return cty.MapValEmpty(cty.Number), cty.Map(cty.Number), data
		}
		return cty.MapVal(m), cty.Map(cty.Number), data
	case 9:
		n := int(next() % 3)
		var vs []cty.Value
		var ts []cty.Type
		for range n {
			var v cty.Value
			var t cty.Type
			v, t, data = genValue(data, depth+1)
			vs, ts = append(vs, v), append(ts, t)
		}
		return cty.TupleVal(vs), cty.Tuple(ts), data
	case 10:
		n := int(next() % 4)
		var vs []cty.Value
		for range n {
			vs = append(vs, cty.NumberIntVal(int64(next()%5)))
		}
		if n == 0 {
			return cty.SetValEmpty(cty.Number), cty.Set(cty.Number), data
		}
		return cty.SetVal(vs), cty.Set(cty.Number), data
	default:
		return cty.NullVal(cty.EmptyObject), cty.EmptyObject, data
	}
}

func checkMarshal(t *testing.T, v cty.Value, ty cty.Type) {
	t.Helper()
	want, werr := ctyjson.Marshal(v, ty)
	got, gerr := marshalValue(v, ty)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%#v as %#v: errors %v / %v", v, ty, werr, gerr)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Fatalf("%#v as %#v (-ctyjson +fast):\n%s", v, ty, d)
	}
}

func TestMarshalValueMatchesCty(t *testing.T) {
	for _, c := range []struct {
		v  cty.Value
		ty cty.Type
	}{
		{cty.ObjectVal(map[string]cty.Value{"values": cty.NullVal(cty.DynamicPseudoType), "fail": cty.NullVal(cty.String)}),
			cty.Object(map[string]cty.Type{"values": cty.DynamicPseudoType, "fail": cty.String})},
		{cty.ObjectVal(map[string]cty.Value{"values": cty.StringVal("<x & \"y\">\u2028\xff")}), cty.Object(map[string]cty.Type{"values": cty.DynamicPseudoType})},
		{cty.NumberFloatVal(1.5e300), cty.Number},
		{cty.MustParseNumberVal("123456789012345678901234567890.000000001"), cty.Number},
		{cty.PositiveInfinity, cty.Number},
		{cty.UnknownVal(cty.String), cty.String},
		{cty.StringVal("s").Mark("sensitive"), cty.String},
		{cty.DynamicVal, cty.DynamicPseudoType},
		{cty.NullVal(cty.DynamicPseudoType), cty.DynamicPseudoType},
		{cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"b": cty.True, "a": cty.Zero})}),
			cty.List(cty.Object(map[string]cty.Type{"a": cty.Number, "b": cty.Bool}))},
		{cty.ObjectVal(map[string]cty.Value{"k1": cty.Zero, "k2": cty.Zero, "k3": cty.Zero, "k4": cty.Zero, "k5": cty.Zero,
			"k6": cty.Zero, "k7": cty.Zero, "k8": cty.Zero, "k9": cty.Zero, "k0": cty.Zero}),
			cty.Object(map[string]cty.Type{"k1": cty.Number, "k2": cty.Number, "k3": cty.Number, "k4": cty.Number, "k5": cty.Number,
				"k6": cty.Number, "k7": cty.Number, "k8": cty.Number, "k9": cty.Number, "k0": cty.Number})},
	} {
		checkMarshal(t, c.v, c.ty)
	}
	for _, seed := range [][]byte{{5, 3, 2, 'a', 'b', 0, 1, 'c', 7, 2, 2, 'x', 'y'}, {9, 2, 4, 5, 1, 'q', 0, 0}, {6, 3, 1, 'k', 8, 2, 1, 'm', 3}} {
		v, ty, _ := genValue(seed, 0)
		checkMarshal(t, v, ty)
	}
}

func FuzzMarshalValue(f *testing.F) {
	f.Add([]byte{5, 3, 2, 'a', 'b', 0, 1, 'c', 7, 2, 2, 'x', 'y'})
	f.Add([]byte{9, 2, 4, 5, 1, 'q', 0, 0, 10, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ty, _ := genValue(data, 0)
		checkMarshal(t, v, ty)
	})
}

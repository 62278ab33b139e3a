package sdk

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// conforms may only skip a conversion that would change nothing.
func TestConformsSkipsOnlyIdentityConversions(t *testing.T) {
	opt := cty.ObjectWithOptionalAttrs(map[string]cty.Type{"a": cty.String, "b": cty.Number}, []string{"b"})
	vals := []cty.Value{
		cty.StringVal("x"), cty.NumberIntVal(1), cty.True, cty.NullVal(cty.String), cty.UnknownVal(cty.String), cty.DynamicVal,
		cty.EmptyObjectVal,
		cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x")}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.NumberIntVal(2)}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.StringVal("2")}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1), "b": cty.NullVal(cty.Number)}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "c": cty.True}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.DynamicVal, "b": cty.NumberIntVal(2)}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.ObjectVal(map[string]cty.Value{"n": cty.StringVal("y")})}),
		cty.TupleVal([]cty.Value{cty.StringVal("x")}),
		cty.ListVal([]cty.Value{cty.StringVal("x")}),
	}
	wants := []cty.Type{
		cty.String, cty.Number, cty.DynamicPseudoType, opt, cty.EmptyObject,
		cty.Object(map[string]cty.Type{"a": cty.String}),
		cty.Object(map[string]cty.Type{"a": cty.DynamicPseudoType}),
		cty.Object(map[string]cty.Type{"a": cty.String, "b": cty.Number}),
		cty.Object(map[string]cty.Type{"a": cty.Object(map[string]cty.Type{"n": cty.String})}),
		cty.List(cty.String),
	}
	skipped := 0
	for _, v := range vals {
		for _, want := range wants {
			if !conforms(v.Type(), want) {
				continue
			}
			skipped++
			got, err := convert.Convert(v, want)
			if err != nil || !got.RawEquals(v) {
				t.Errorf("conforms(%#v, %#v) but Convert gives %#v, %v", v.Type(), want, got, err)
			}
		}
	}
	if skipped < 10 {
		t.Errorf("only %d conversions skipped: the fast path is not taken", skipped)
	}
	// The cases the fast path exists for.
	for _, tc := range []struct {
		v    cty.Value
		want cty.Type
	}{
		{cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.NumberIntVal(2)}), opt},
		{cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x")}), cty.Object(map[string]cty.Type{"a": cty.DynamicPseudoType})},
	} {
		if !conforms(tc.v.Type(), tc.want) {
			t.Errorf("conforms(%#v, %#v) = false", tc.v.Type(), tc.want)
		}
	}
}

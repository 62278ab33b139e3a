package pluginwire

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestValueRoundTrip(t *testing.T) {
	obj := cty.ObjectVal(map[string]cty.Value{
		"a": cty.StringVal("x"),
		"l": cty.ListVal([]cty.Value{cty.StringVal("p"), cty.StringVal("q")}),
		"m": cty.MapVal(map[string]cty.Value{"k": cty.NumberIntVal(1)}),
	})
	tests := []struct {
		name  string
		v     cty.Value
		paths []cty.Path
	}{
		{"string", cty.StringVal("héllo"), nil},
		{"big number", cty.MustParseNumberVal("123456789012345678901234567890.5"), nil},
		{"null typed", cty.NullVal(cty.List(cty.String)), nil},
		{"null dynamic", cty.NullVal(cty.DynamicPseudoType), nil},
		{"unknown top-level", cty.UnknownVal(cty.Object(map[string]cty.Type{"a": cty.String})), nil},
		{"dynamic unknown", cty.DynamicVal, nil},
		{"nested unknowns", cty.ObjectVal(map[string]cty.Value{"a": cty.UnknownVal(cty.String), "b": cty.DynamicVal}), nil},
		{"refined unknown", cty.UnknownVal(cty.String).RefineNotNull(), nil},
		{"empty object", cty.EmptyObjectVal, nil},
		{"set", cty.SetVal([]cty.Value{cty.True, cty.False}), nil},
		{"tuple", cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1), cty.NullVal(cty.Bool)}), nil},
		{"marked leaf", obj, []cty.Path{cty.GetAttrPath("a")}},
		{"marked list element and map value", obj, []cty.Path{cty.GetAttrPath("l").Index(cty.NumberIntVal(1)), cty.GetAttrPath("m").Index(cty.StringVal("k"))}},
		{"marked whole", obj, []cty.Path{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := MarkPaths(tt.v, tt.paths)
			dv, err := EncodeValue(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := DecodeMarkedValue(dv)
			if err != nil {
				t.Fatal(err)
			}
			if !out.RawEquals(in) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", out, in)
			}
			_, paths, _ := DecodeValue(dv)
			if len(paths) != len(tt.paths) {
				t.Fatalf("paths = %#v, want %#v", paths, tt.paths)
			}
		})
	}
	if dv, err := EncodeValue(cty.NilVal); dv != nil || err != nil {
		t.Fatalf("EncodeValue(NilVal) = %v, %v", dv, err)
	}
	if v, _, err := DecodeValue(nil); v != cty.NilVal || err != nil {
		t.Fatalf("DecodeValue(nil) = %#v, %v", v, err)
	}
}

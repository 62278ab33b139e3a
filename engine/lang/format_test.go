package lang

import (
	"math/big"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestFormatValue(t *testing.T) {
	huge, _, _ := big.ParseFloat("1e5000", 10, 512, big.ToNearestEven)
	tests := []struct {
		v    cty.Value
		want string
	}{
		{cty.NilVal, "null"},
		{cty.NullVal(cty.String), "null"},
		{cty.StringVal("a\"b"), `"a\"b"`},
		{cty.StringVal("l1\nl2\n"), "<<-EOT\n  l1\n  l2\nEOT"},
		{cty.NumberFloatVal(1.5), "1.5"},
		{cty.NumberVal(huge), "1e+5000"},
		{cty.True, "true"},
		{cty.UnknownVal(cty.String), KnownAfterApply},
		{cty.StringVal("pw").Mark(MarkSensitive), SensitiveValue},
		{cty.StringVal("x").Mark("other"), `"x"`},
		{cty.ListValEmpty(cty.String), "[]"},
		{cty.EmptyObjectVal, "{}"},
		{cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}), `["a", "b"]`},
		{cty.ListVal([]cty.Value{cty.StringVal("a"), cty.UnknownVal(cty.String)}), "[\n  \"a\",\n  (known after apply),\n]"},
		{cty.ObjectVal(map[string]cty.Value{
			"b":         cty.StringVal("x").Mark(MarkSensitive),
			"long_name": cty.MapVal(map[string]cty.Value{"k 1": cty.NumberIntVal(1)}),
		}), "{\n  b         = (sensitive)\n  long_name = {\n    \"k 1\" = 1\n  }\n}"},
	}
	for _, tt := range tests {
		if got := FormatValue(tt.v, 0); got != tt.want {
			t.Errorf("FormatValue(%#v):\n got %s\nwant %s", tt.v, got, tt.want)
		}
	}
	if got := ValueJSON(cty.ObjectVal(map[string]cty.Value{"s": cty.StringVal("x").Mark(MarkSensitive), "u": cty.UnknownVal(cty.Number), "n": cty.NumberIntVal(3)})); got.(map[string]any)["s"] != SensitiveValue ||
		got.(map[string]any)["u"] != KnownAfterApply || got.(map[string]any)["n"] != int64(3) {
		t.Errorf("ValueJSON: %#v", got)
	}
	mask := SecretMasker(cty.ObjectVal(map[string]cty.Value{"pw": cty.StringVal("hunter2").Mark(MarkSensitive), "n": cty.StringVal("bob")}))
	if got := mask("login bob:hunter2"); got != "login bob:"+SensitiveValue {
		t.Errorf("mask: %s", got)
	}
}

// FormatInputs renders what FormatValue(WithoutNulls(v)) does.
func TestFormatInputsIsWithoutNulls(t *testing.T) {
	for _, v := range []cty.Value{
		cty.ObjectVal(map[string]cty.Value{"command": cty.StringVal("echo"), "args": cty.NullVal(cty.List(cty.String)), "env": cty.UnknownVal(cty.Map(cty.String))}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.NullVal(cty.String)}),
		cty.ObjectVal(map[string]cty.Value{"token": cty.NullVal(cty.String).Mark(MarkSensitive), "x y": cty.NumberIntVal(1)}),
		cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("s")}).Mark(MarkSensitive),
		cty.EmptyObjectVal, cty.UnknownVal(cty.EmptyObject), cty.NullVal(cty.EmptyObject), cty.StringVal("x"), cty.NilVal,
	} {
		for _, indent := range []int{0, 4} {
			if got, want := FormatInputs(v, indent), FormatValue(WithoutNulls(v), indent); got != want {
				t.Errorf("%#v at %d:\n%s\nwant:\n%s", v, indent, got, want)
			}
		}
	}
}

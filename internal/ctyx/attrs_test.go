package ctyx

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestAttrs(t *testing.T) {
	in := cty.ObjectVal(map[string]cty.Value{
		"s":       cty.StringVal("x"),
		"secret":  cty.StringVal("pw").Mark("sensitive"),
		"b":       cty.True,
		"n":       cty.NumberFloatVal(7.9),
		"null":    cty.NullVal(cty.String),
		"unknown": cty.UnknownVal(cty.String),
	})
	if got := StringAttr(in, "s"); got != "x" {
		t.Errorf("StringAttr(s) = %q", got)
	}
	if got := StringAttr(in, "secret"); got != "pw" {
		t.Errorf("StringAttr(secret) = %q", got)
	}
	for _, name := range []string{"null", "unknown", "absent", "b", "n"} {
		if got := StringAttr(in, name); got != "" {
			t.Errorf("StringAttr(%s) = %q, want \"\"", name, got)
		}
	}
	if got := StringAttr(cty.NilVal, "s"); got != "" {
		t.Errorf("StringAttr of NilVal = %q", got)
	}
	if got := StringAttr(cty.StringVal("s"), "s"); got != "" {
		t.Errorf("StringAttr of a string = %q", got)
	}
	if !BoolAttr(in, "b", false) || !BoolAttr(in, "absent", true) || BoolAttr(in, "s", false) {
		t.Error("BoolAttr: known value or default")
	}
	if i, ok := IntAttr(in, "n", 3); i != 7 || !ok {
		t.Errorf("IntAttr(n) = %d, %v", i, ok)
	}
	if i, ok := IntAttr(in, "null", 3); i != 3 || ok {
		t.Errorf("IntAttr(null) = %d, %v", i, ok)
	}
	if v := Attr(cty.UnknownVal(cty.DynamicPseudoType), "s"); !v.IsNull() {
		t.Errorf("Attr of unknown = %#v", v)
	}
}

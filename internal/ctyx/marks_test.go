package ctyx

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestContainsMarked(t *testing.T) {
	s := cty.StringVal("x")
	m := s.Mark("sensitive")
	tests := []struct {
		name string
		v    cty.Value
	}{
		{"string", s},
		{"marked string", m},
		{"null", cty.NullVal(cty.String)},
		{"marked null", cty.NullVal(cty.String).Mark("sensitive")},
		{"unknown", cty.UnknownVal(cty.String)},
		{"marked unknown", cty.UnknownVal(cty.String).Mark("sensitive")},
		{"dynamic", cty.DynamicVal},
		{"empty object", cty.EmptyObjectVal},
		{"object", cty.ObjectVal(map[string]cty.Value{"a": s, "b": cty.NumberIntVal(1)})},
		{"object with marked attr", cty.ObjectVal(map[string]cty.Value{"a": s, "b": m})},
		{"deep object", cty.ObjectVal(map[string]cty.Value{"a": cty.ObjectVal(map[string]cty.Value{"b": cty.TupleVal([]cty.Value{s, m})})})},
		{"tuple", cty.TupleVal([]cty.Value{s, s})},
		{"tuple with marked", cty.TupleVal([]cty.Value{s, m})},
		{"empty tuple", cty.EmptyTupleVal},
		{"list", cty.ListVal([]cty.Value{s, s})},
		{"list with marked", cty.ListVal([]cty.Value{s, m})},
		{"map with marked", cty.MapVal(map[string]cty.Value{"k": m})},
		{"set", cty.SetVal([]cty.Value{s})},
		{"set with marked", cty.SetVal([]cty.Value{m})},
		{"list of objects with marked", cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"a": m})})},
		{"object with unknown and null", cty.ObjectVal(map[string]cty.Value{"a": cty.UnknownVal(cty.String), "b": cty.NullVal(cty.List(cty.String))})},
		{"marked object", cty.ObjectVal(map[string]cty.Value{"a": s}).Mark("x")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := ContainsMarked(tc.v), tc.v.ContainsMarked(); got != want {
				t.Errorf("ContainsMarked(%#v) = %v, cty says %v", tc.v, got, want)
			}
		})
	}
}

func BenchmarkContainsMarked(b *testing.B) {
	v := cty.ObjectVal(map[string]cty.Value{"values": cty.NullVal(cty.DynamicPseudoType), "name": cty.StringVal("x"), "n": cty.NumberIntVal(3)})
	b.Run("ctyx", func(b *testing.B) {
		for b.Loop() {
			ContainsMarked(v)
		}
	})
	b.Run("cty", func(b *testing.B) {
		for b.Loop() {
			v.ContainsMarked()
		}
	})
}

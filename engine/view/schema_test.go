package view

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/zclconf/go-cty/cty"
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    cty.Type
		want string
	}{
		{cty.String, "string"},
		{cty.DynamicPseudoType, "any"},
		{cty.List(cty.Map(cty.Number)), "list(map(number))"},
		{cty.Set(cty.Bool), "set(bool)"},
		{cty.Object(map[string]cty.Type{"b": cty.String, "a": cty.Number}), "object({a = number, b = string})"},
		{cty.Tuple([]cty.Type{cty.String, cty.Bool}), "tuple([string, bool])"},
	}
	for _, tt := range tests {
		if got := typeString(tt.t); got != tt.want {
			t.Errorf("typeString(%#v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestMergeGenerated(t *testing.T) {
	gen := "# ref\n"
	block := DocsBegin + "\n" + gen + DocsEnd + "\n"
	tests := []struct{ name, page, want string }{
		{"new page", "", block},
		{"hand-written page gets a section", "# couchdb\n\nprose\n", "# couchdb\n\nprose\n\n" + block},
		{"section replaced, prose kept", "intro\n\n" + DocsBegin + "\nold\n" + DocsEnd + "\n\noutro\n", "intro\n\n" + block + "\noutro\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MergeGenerated(tt.page, gen)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MergeGenerated (-want +got):\n%s", diff)
			}
			if again := MergeGenerated(got, gen); again != got {
				t.Errorf("not idempotent:\n%s", again)
			}
		})
	}
}

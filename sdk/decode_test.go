package sdk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"
)

// A null input leaves a pointer field nil, so that an optional input left
// out can be told from one set to its zero value; other fields get zero
// values, as before.
func TestDecodeNullsIntoPointersStayNil(t *testing.T) {
	type nested struct {
		N *int   `cty:"n"`
		S string `cty:"s"`
	}
	type in struct {
		Name    string            `cty:"name"`
		Timeout *int              `cty:"timeout"`
		Force   *bool             `cty:"force"`
		Label   *string           `cty:"label"`
		Tags    []string          `cty:"tags"`
		Env     map[string]string `cty:"env"`
		Nested  nested            `cty:"nested"`
		Opt     *nested           `cty:"opt"`
		Ptrs    []*string         `cty:"ptrs"`
		Any     cty.Value         `cty:"any"`
	}
	nestedT := cty.Object(map[string]cty.Type{"n": cty.Number, "s": cty.String})
	zero, five, yes, empty := 0, 5, true, ""
	tests := []struct {
		name string
		v    cty.Value
		want in
	}{
		{"all null", cty.ObjectVal(map[string]cty.Value{
			"name": cty.NullVal(cty.String), "timeout": cty.NullVal(cty.Number), "force": cty.NullVal(cty.Bool),
			"label": cty.NullVal(cty.String), "tags": cty.NullVal(cty.List(cty.String)), "env": cty.NullVal(cty.Map(cty.String)),
			"nested": cty.NullVal(nestedT), "opt": cty.NullVal(nestedT), "ptrs": cty.NullVal(cty.List(cty.String)),
			"any": cty.NullVal(cty.DynamicPseudoType),
		}), in{Tags: []string{}, Env: map[string]string{}, Ptrs: []*string{}, Any: cty.NullVal(cty.DynamicPseudoType)}},
		{"zero values set", cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal(""), "timeout": cty.Zero, "force": cty.True,
			"label": cty.StringVal(""), "tags": cty.ListVal([]cty.Value{cty.NullVal(cty.String), cty.StringVal("a")}),
			"env":    cty.MapVal(map[string]cty.Value{"k": cty.NullVal(cty.String)}),
			"nested": cty.ObjectVal(map[string]cty.Value{"n": cty.NullVal(cty.Number), "s": cty.NullVal(cty.String)}),
			"opt":    cty.ObjectVal(map[string]cty.Value{"n": cty.NumberIntVal(5), "s": cty.NullVal(cty.String)}),
			"ptrs":   cty.ListVal([]cty.Value{cty.NullVal(cty.String), cty.StringVal("")}),
			"any":    cty.StringVal("x"),
		}), in{Timeout: &zero, Force: &yes, Label: &empty, Tags: []string{"", "a"}, Env: map[string]string{"k": ""},
			Opt: &nested{N: &five}, Ptrs: []*string{nil, &empty}, Any: cty.StringVal("x")}},
	}
	opts := cmp.Comparer(func(a, b cty.Value) bool { return a.RawEquals(b) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got in
			if err := Decode(tt.v, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, opts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A null object decodes into a struct of zero values, as before.
func TestDecodeNullObject(t *testing.T) {
	var got struct {
		S string `cty:"s"`
		P *int   `cty:"p"`
	}
	v := cty.NullVal(cty.Object(map[string]cty.Type{"s": cty.String, "p": cty.Number}))
	if err := Decode(v, &got); err != nil || got.S != "" || got.P != nil {
		t.Fatalf("Decode = %+v, %v", got, err)
	}
}

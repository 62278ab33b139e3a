package sdk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"
)

func TestAttributesOf(t *testing.T) {
	type inner struct {
		A string `cty:"a"`
	}
	type in struct {
		Name    string            `cty:"name" runbook:"required" doc:"Who."`
		Token   string            `cty:"token" runbook:"required,sensitive"`
		Count   int               `cty:"count"`
		Tags    []string          `cty:"tags"`
		Env     map[string]string `cty:"env"`
		Nested  inner             `cty:"nested"`
		Any     cty.Value         `cty:"any"`
		private string            //lint:ignore U1000 an unexported field, which AttributesOf must skip
	}
	got, err := AttributesOf(&in{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Attribute{
		{Name: "name", Type: cty.String, Required: true, Description: "Who."},
		{Name: "token", Type: cty.String, Required: true, Sensitive: true},
		{Name: "count", Type: cty.Number},
		{Name: "tags", Type: cty.List(cty.String)},
		{Name: "env", Type: cty.Map(cty.String)},
		{Name: "nested", Type: cty.Object(map[string]cty.Type{"a": cty.String})},
		{Name: "any", Type: cty.DynamicPseudoType},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(cty.Type.Equals)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// The same struct decodes the inputs.
	s := ActionSchema{Name: "x", Inputs: got}
	v, d := conformInputs(s, s.InputType(), cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("n"), "token": cty.StringVal("t"), "count": cty.NumberIntVal(2)}))
	if d.HasErrors() {
		t.Fatal(d.Err())
	}
	var dst in
	if err := Decode(v, &dst); err != nil || dst.Name != "n" || dst.Count != 2 {
		t.Fatalf("decode = %+v, %v", dst, err)
	}
	for _, bad := range []any{1, struct {
		X string `cty:"x" runbook:"optional"`
	}{}, struct {
		C chan int `cty:"c"`
	}{}} {
		if _, err := AttributesOf(bad); err == nil {
			t.Errorf("AttributesOf(%T) succeeded", bad)
		}
	}
}

package sdk

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
)

// AttributesOf derives attributes from the fields of a struct that carry a
// `cty:"name"` tag (the same struct sdk.Decode fills), so inputs are
// declared once:
//
//	type greetInputs struct {
//		Name  string `cty:"name" runbook:"required" doc:"Who to greet."`
//		Token string `cty:"token" runbook:"sensitive"`
//	}
//	Inputs: sdk.MustAttributesOf(greetInputs{}),
//
// Types come from gocty's implied types (string, numbers, bool, slices,
// maps, nested structs); a cty.Value field is "any". The `runbook` tag takes
// "required" and "sensitive"; `doc` is the description.
func AttributesOf(v any) ([]Attribute, error) {
	rt := reflect.TypeOf(v)
	for rt != nil && rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt == nil || rt.Kind() != reflect.Struct {
		return nil, fmt.Errorf("AttributesOf: %T is not a struct", v)
	}
	var out []Attribute
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name := f.Tag.Get("cty")
		if name == "" {
			continue
		}
		var t cty.Type
		if f.Type == reflect.TypeOf(cty.Value{}) {
			t = cty.DynamicPseudoType
		} else {
			var err error
			t, err = gocty.ImpliedType(reflect.Zero(f.Type).Interface())
			if err != nil {
				return nil, fmt.Errorf("AttributesOf: field %s: %w", f.Name, err)
			}
		}
		a := Attribute{Name: name, Type: t, Description: f.Tag.Get("doc")}
		for _, opt := range strings.Split(f.Tag.Get("runbook"), ",") {
			switch strings.TrimSpace(opt) {
			case "required":
				a.Required = true
			case "sensitive":
				a.Sensitive = true
			case "":
			default:
				return nil, fmt.Errorf("AttributesOf: field %s: unknown runbook tag option %q", f.Name, opt)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// MustAttributesOf is AttributesOf for schemas built in code; it panics on
// an unsupported struct, which is a bug in the plugin caught by its first
// test.
func MustAttributesOf(v any) []Attribute {
	a, err := AttributesOf(v)
	if err != nil {
		panic(err)
	}
	return a
}

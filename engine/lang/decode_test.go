package lang

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// decodeVar calls fn(s) as a runbook does: the result's type first, then
// the value.
func decodeVar(fn, s string) (cty.Value, hcl.Diagnostics) {
	f := Functions(".")[fn]
	args := []cty.Value{cty.StringVal(s)}
	if _, err := f.ReturnTypeForValues(args); err != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "type", Detail: err.Error()}}
	}
	v, err := f.Call(args)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "call", Detail: err.Error()}}
	}
	return v, nil
}

// jsondecode and yamldecode of text nested deeper than MaxNesting fail
// with a diagnostic at once: 2,000,000 "[" ended the process with a Go
// stack overflow, and 200,000 in YAML did not finish in ten minutes.
func TestDecodeDepthBounded(t *testing.T) {
	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	tests := []struct {
		fn, src, want string // want "": decodes
	}{
		{"jsondecode", deep("[", "]", MaxNesting), ""},
		{"jsondecode", strings.Repeat(`{"a":`, MaxNesting) + "1" + strings.Repeat("}", MaxNesting), ""},
		{"jsondecode", `{"a": "[[[[[[[[[[[[", "b": ["]]]", "\"["]}`, ""},
		{"jsondecode", deep("[", "]", MaxNesting+1), "the JSON nests more than 1000 levels deep (at byte 1000)"},
		{"jsondecode", deep("[", "]", 2000000), "the JSON nests more than 1000 levels deep"},
		{"jsondecode", strings.Repeat("[", 2000000), "the JSON nests more than 1000 levels deep"},
		{"jsondecode", deep(`{"a":`, "}", 2000000), "the JSON nests more than 1000 levels deep"},
		{"yamldecode", deep("[", "]", 400), ""},
		{"yamldecode", "a: 1\nb:\n  - c: 'x [[['\n    d: \"]]] # {{\"\n  - [1, {e: f}]\n", ""},
		{"yamldecode", strings.Repeat("- ", 400) + "x", ""},
		{"yamldecode", deep("[", "]", 200000), "the YAML holds more than 5000 flow collections"},
		{"yamldecode", strings.Repeat("- ", 200000) + "x", "the YAML may nest more than 1000 levels deep"},
		{"yamldecode", "a:\n" + strings.Repeat(" ", 200000) + "b: 1\n", "the YAML may nest more than 1000 levels deep"},
		{"yamldecode", deep("{a: ", "}", 200000), "the YAML may nest more than 1000 levels deep"},
		{"yamldecode", deep("{\"a\":", "}", 200000), "the YAML holds more than 5000 flow collections"},
	}
	for _, tt := range tests {
		start := time.Now()
		v, diags := decodeVar(tt.fn, tt.src)
		took := time.Since(start)
		name := tt.fn + "(" + tt.src[:min(len(tt.src), 30)] + "...)"
		if tt.want == "" {
			if diags.HasErrors() {
				t.Errorf("%s: %v", name, diags)
			} else if v.IsNull() {
				t.Errorf("%s: null", name)
			}
			continue
		}
		if !diags.HasErrors() || !strings.Contains(diags[0].Detail, tt.want) {
			t.Errorf("%s: %v, want an error saying %q", name, diags, tt.want)
		}
		if took > 5*time.Second {
			t.Errorf("%s: refused after %v", name, took)
		}
	}
}

// valueDepth is how deeply collections nest in v (a primitive: 0).
func valueDepth(v cty.Value) int {
	if !v.IsKnown() || v.IsNull() || !v.CanIterateElements() {
		return 0
	}
	most := 0
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		most = max(most, valueDepth(e))
	}
	return 1 + most
}

// FuzzDecodeDepth: what jsondecode and yamldecode decode nests no deeper
// than the scan before decoding says (JSON: exactly its limit; YAML: its
// limit for block collections plus two levels per flow collection).
func FuzzDecodeDepth(f *testing.F) {
	for _, s := range []string{
		`[[1], {"a": [2]}]`, `{"a": "]]]", "b": [[["\"]"]]]}`, "a:\n  - b: [1, {c: d}]\n  - - - e\n",
		"? - a\n  - b\n: [x: y]\n", "a: |\n  [[[\n  ]]]\nb: [\"]\", ']]', # ]\n  [[c]]]\n", "- 'it''s [' \n- \"\\\"]\"\n",
		"a: &x [1, [2]]\nb: *x\n", "{a: [b: [c: d]]}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const limit = 6
		if off, _ := jsonDeepAt(s, limit); off < 0 {
			if v, diags := decodeVar("jsondecode", s); !diags.HasErrors() && valueDepth(v) > limit {
				t.Fatalf("jsondecode(%q) nests %d levels; the scan allowed at most %d", s, valueDepth(v), limit)
			}
		}
		if off, _ := yamlDeepAt(s, limit); off < 0 {
			bound := limit + 2*strings.Count(s, "[") + 2*strings.Count(s, "{")
			if v, diags := decodeVar("yamldecode", s); !diags.HasErrors() && valueDepth(v) > bound {
				t.Fatalf("yamldecode(%q) nests %d levels; the scan allowed at most %d", s, valueDepth(v), bound)
			}
		}
	})
}

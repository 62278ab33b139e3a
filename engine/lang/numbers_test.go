package lang

import (
	"strings"
	"testing"
	"time"
)

// Arithmetic cannot make a number out of range: the result is an error
// where it is made, quickly, rather than a number that takes minutes and
// hundreds of megabytes to render.
func TestNumbersBoundedInArithmetic(t *testing.T) {
	squarings := "1e10000"
	for i := 0; i < 10; i++ {
		squarings = "(" + squarings + " * " + squarings + ")"
	}
	tests := []struct{ expr, want string }{
		{"length(tostring(1e10000 * 1e10000))", "is too large a number"},
		{"length(tostring(" + squarings + "))", "is too large a number"},
		{"1e-10000 / 1e10000", "is too small a number"},
		{"1e10000 / 1e-10000", "is too large a number"},
		{`tonumber("1e99999999")`, "is too large a number"},
		{`jsondecode("{\"a\": [1e99999]}")`, "is too large a number"},
		{`yamldecode("a: 1e99999")`, "is too large a number"},
		{"1e10000 * 9", ""},
		{"1e-10000 * 1", ""},
		{`parseint("ff", 16) * 2`, ""},
		{"1e10000 * 0", ""},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("output \"o\" {\n  value = " + tc.expr + "\n}\n")})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			start := time.Now()
			_, diags = (&Scope{Config: cfg}).Outputs()
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v", took)
			}
			switch {
			case tc.want == "" && diags.HasErrors():
				t.Errorf("unexpected error: %v", diags)
			case tc.want != "" && !strings.Contains(diags.Error(), tc.want):
				t.Errorf("got %v, want an error saying %q", diags, tc.want)
			case tc.want != "" && !strings.Contains(diags.Error(), "numbers range up to 1e10000"):
				t.Errorf("the error does not give the range: %v", diags)
			}
		})
	}
}

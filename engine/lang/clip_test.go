package lang

import (
	"bytes"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestClipText(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct{ name, in, want string }{
		{"short", `cannot convert "abc" to number`, `cannot convert "abc" to number`},
		{"long quoted", `cannot convert "` + long + `" to number`,
			`cannot convert "` + long[:MaxQuotedLen] + `…" (4800 more bytes) to number`},
		{"escapes kept whole", `"` + strings.Repeat("é\\u00e9", 100) + `"`,
			`"` + strings.Repeat("é\\u00e9", 25) + `…" (600 more bytes)`},
		{"stray quote", `it's a "` + long[:300], `it's a "` + long[:300]},
		{"long line", strings.Repeat("ab ", 1000) + "\nnext",
			strings.Repeat("ab ", 1000)[:MaxLineLen] + "… (1000 more bytes)\nnext"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClipText(tc.in); got != tc.want {
				t.Errorf("ClipText:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// An error about a huge value prints a bounded amount of it: the value of
// each variable shown beside the snippet, the function's own message and
// the JSON form.
func TestDiagnosticsClipHugeValues(t *testing.T) {
	cfg := mustLoadNoCheck(t, `
variable "big" { type = string }
variable "items" { type = list(string) }
locals {
  a = tonumber(var.big)
  b = tonumber(join(",", var.items))
}
step "core.exec" "x" {
  with = { command = "${local.a}${local.b}" }
}
`)
	items := make([]cty.Value, 100000)
	for i := range items {
		items[i] = cty.StringVal("item")
	}
	s := &Scope{Config: cfg, Vars: map[string]cty.Value{"big": cty.StringVal(strings.Repeat("x", 200000)), "items": cty.ListVal(items)}}
	_, diags := s.Locals()
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	var out bytes.Buffer
	if err := cfg.WriteDiagnostics(&out, diags, 0, false); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 4000 || !strings.Contains(out.String(), "more bytes)") {
		t.Errorf("diagnostics are %d bytes:\n%.3000s", out.Len(), out.String())
	}
	var js bytes.Buffer
	if err := cfg.WriteJSONDiagnostics(&js, diags); err != nil {
		t.Fatal(err)
	}
	if js.Len() > 4000 {
		t.Errorf("JSON diagnostics are %d bytes", js.Len())
	}
}

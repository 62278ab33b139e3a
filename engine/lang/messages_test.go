package lang

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func writeDiags(t *testing.T, files map[string][]byte, color bool) string {
	t.Helper()
	cfg, diags := LoadSources(files)
	if !diags.HasErrors() {
		diags = cfg.Check(testSchemas)
	}
	var b bytes.Buffer
	if err := cfg.WriteDiagnostics(&b, diags, 80, color); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A file refused before parsing is still shown in its diagnostics.
func TestRefusedFileShowsItsSource(t *testing.T) {
	for name, src := range map[string]string{
		"main.hcl":          "output \"o\" {\n  value = 1e-99999999\n}\n",
		"main.runbook.json": `{"output": {"o": {"value": 1e-99999999}}}`,
	} {
		out := writeDiags(t, map[string][]byte{name: []byte(src)}, false)
		if strings.Contains(out, "source code not available") || !strings.Contains(out, "1e-99999999") {
			t.Errorf("%s: the diagnostic shows no source:\n%s", name, out)
		}
		if !strings.Contains(out, "too small") || strings.Contains(out, "too large") {
			t.Errorf("%s: 1e-99999999 is not too large, it is too small:\n%s", name, out)
		}
	}
	cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("variable \"n\" {\n  type = any\n}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, diags = cfg.ResolveVariables(VarSources{Args: []string{"n=[1e99999]"}})
	var b bytes.Buffer
	if err := cfg.WriteDiagnostics(&b, diags, 80, false); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "source code not available") || !strings.Contains(out, "[1e99999]") {
		t.Errorf("-var: the diagnostic shows no source:\n%s", out)
	}
}

// Control characters of binary input are escaped, never written to the
// terminal as they are.
func TestDiagnosticsEscapeControlCharacters(t *testing.T) {
	src := []byte("\x00\x00\x01abc\x00 \x1b[2J\n")
	for _, color := range []bool{false, true} {
		out := writeDiags(t, map[string][]byte{"main.hcl": src}, color)
		if !strings.Contains(out, "Invalid character") {
			t.Fatalf("no diagnostic:\n%q", out)
		}
		for _, c := range []string{"\x00", "\x01", "\x1b[2J"} {
			if strings.Contains(out, c) {
				t.Errorf("color=%v: %q written as it is:\n%q", color, c, out)
			}
		}
		plain := strings.NewReplacer("\x1b[31m", "", "\x1b[0m", "", "\x1b[1;4m", "").Replace(out)
		if !strings.Contains(plain, `\x00\x00\x01abc\x00 \x1b[2J`) {
			t.Errorf("color=%v: the snippet is not escaped:\n%q", color, out)
		}
		if color && !strings.Contains(out, "\x1b[31mError\x1b[0m") {
			t.Errorf("colours lost:\n%q", out)
		}
	}
}

// An error in a local is reported once, not once per expression using it.
func TestPlanReportsAnErrorOnce(t *testing.T) {
	cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte(`variable "n" {
  type = any
}
locals {
  twice = var.n * 2
}
step "core.exec" "a" {
  with = { command = "echo ${local.twice}" }
}
step "core.exec" "b" {
  with = { command = "echo ${local.twice}" }
}
output "o" {
  value = local.twice
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	vars, diags := cfg.ResolveVariables(VarSources{Args: []string{"n=[1]"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, diags = cfg.Plan(context.Background(), PlanOptions{Vars: vars, Schemas: testSchemas})
	if len(diags) != 1 {
		t.Errorf("%d diagnostics, want 1:\n%v", len(diags), diags)
	}
	dup := append(diags, diags...)
	if got := len(cfg.JSONDiagnostics(dup)); got != 1 {
		t.Errorf("JSON: %d diagnostics, want 1", got)
	}
	var b bytes.Buffer
	if err := cfg.WriteDiagnostics(&b, dup, 80, false); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "Invalid operand"); n != 1 {
		t.Errorf("text: %d diagnostics, want 1:\n%s", n, b.String())
	}
}

package lang

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// A runbook whose number literals are all fine; each case below puts
// 1e100000 somewhere in it.
const numberRunbook = `output "o" {
  value = %s
}
`

func TestHugeNumbersAreTokens(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string // "line:col-line:col: detail"
	}{
		{"hash comment", "1 # 1e100000", nil},
		{"slash comment", "1 // 1e100000", nil},
		{"block comment", "/* 1e100000 */ 1", nil},
		{"quoted string", `"1e100000"`, nil},
		{"quoted string, spaced", `"x 1e100000 y"`, nil},
		{"heredoc", "<<EOT\n1e100000\nEOT", nil},
		{"indented heredoc", "<<-EOT\n  1e100000\n  EOT", nil},
		{"largest exponent", "1e10000 + 1e-10000 + 1e010000", nil},
		{"number", "1e100000", []string{"2:11-2:19: 1e100000 is too large"}},
		{"negative exponent", "1.5E-100000", []string{"2:11-2:22: 1.5E-100000 is too small (too precise)"}},
		{"exponent beyond int", "1e99999999999999999999", []string{"2:11-2:33: 1e99999999999999999999 is too large"}},
		{"interpolation", `"a${1e100000}b"`, []string{"2:15-2:23: 1e100000 is too large"}},
		{"in a heredoc's interpolation", "<<EOT\n${1e100000}\nEOT", []string{"3:3-3:11: 1e100000 is too large"}},
		{"two numbers", "[1e100000, 2e100000]", []string{"2:12-2:20: 1e100000 is too large", "2:22-2:30: 2e100000 is too large"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf(numberRunbook, tc.value)
			_, diags := LoadSources(map[string][]byte{"main.hcl": []byte(src)})
			if diff := cmp.Diff(tc.want, numberDiags(diags)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", src, diff)
			}
		})
	}
}

func TestHugeNumbersInJSON(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"string", `{"output": {"o": {"value": "1e100000"}}}`, nil},
		{"string with escapes", `{"output": {"o": {"value": "\\\"1e100000"}}}`, nil},
		{"number", `{"output": {"o": {"value": 1e100000}}}`, []string{"1:28-1:36: 1e100000 is too large"}},
		{"negative number", `{"output": {"o": {"value": -2E+100000}}}`, []string{"1:28-1:38: -2E+100000 is too large"}},
		{"interpolation", `{"output": {"o": {"value": "${1e100000}"}}}`, []string{"1:28-1:41: 1e100000 is too large"}},
		{"interpolation spelt with escapes", `{"output": {"o": {"value": "\u0024{1\u0065100000}"}}}`, []string{"1:28-1:51: 1e100000 is too large"}},
		{"template directive", `{"output": {"o": {"value": "%{ if 1e100000 > 0 }x%{ endif }"}}}`, []string{"1:28-1:61: 1e100000 is too large"}},
		{"escaped interpolation", `{"output": {"o": {"value": "$${1e100000}"}}}`, nil},
		{"after a syntax error the scanner stops", `{"output": {"o": {"value": 1}}} # 1e100000`,
			[]string{"other error: main.runbook.json:1,33-34: Extraneous data after value; Extra characters appear after the JSON value."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := LoadSources(map[string][]byte{"main.runbook.json": []byte(tc.src)})
			if diff := cmp.Diff(tc.want, numberDiags(diags)); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.src, diff)
			}
		})
	}
}

// Values given on the command line and in variable files are checked the
// same way.
func TestHugeNumbersInVariables(t *testing.T) {
	cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("variable \"n\" {\n  type = any\n}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, tc := range []struct {
		name, file, src string
		want            []string
	}{
		{"file, comment", "v.hcl", "n = 1 # 1e100000\n", nil},
		{"file, string", "v.hcl", "n = \"1e100000\"\n", nil},
		{"file, number", "v.hcl", "n = 1e100000\n", []string{"1:5-1:13: 1e100000 is too large"}},
		{"JSON file, string", "v.json", `{"n": "1e100000"}`, nil},
		{"JSON file, number", "v.json", `{"n": 1e100000}`, []string{"1:7-1:15: 1e100000 is too large"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := cfg.parseVarFile(tc.file, []byte(tc.src))
			if diff := cmp.Diff(tc.want, numberDiags(diags)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	_, diags = cfg.ResolveVariables(VarSources{Args: []string{"n=[1e100000]"}})
	if diff := cmp.Diff([]string{"1:2-1:10: 1e100000 is too large"}, numberDiags(diags)[:1]); diff != "" {
		t.Errorf("-var (-want +got):\n%s", diff)
	}
	if _, diags = cfg.ResolveVariables(VarSources{Args: []string{`n=["1e100000"]`}}); diags.HasErrors() {
		t.Errorf("-var with the number in a string: %v", diags)
	}
}

// numberDiags renders the "Number out of range" diagnostics of diags, and
// any other error as its summary.
func numberDiags(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		if d.Summary != "Number out of range" {
			if d.Severity == hcl.DiagError {
				out = append(out, "other error: "+d.Error())
			}
			continue
		}
		r := d.Subject
		out = append(out, fmt.Sprintf("%d:%d-%d:%d: %s", r.Start.Line, r.Start.Column, r.End.Line, r.End.Column,
			strings.TrimSuffix(strings.TrimSuffix(d.Detail, fmt.Sprintf(": exponents above %d are not supported.", maxExponent)),
				fmt.Sprintf(": exponents below -%d are not supported.", maxExponent))))
	}
	return out
}

// checkNumbersSlowly is checkNumbers without its shortcut: it always lexes.
func checkNumbersSlowly(name string, src []byte) hcl.Diagnostics {
	if strings.HasSuffix(name, ".json") {
		return checkJSONNumbers(name, src)
	}
	toks, _ := hclsyntax.LexConfig(src, name, hcl.InitialPos)
	return checkNumberTokens(toks, nil)
}

// FuzzCheckNumbers: the shortcut of checkNumbers never hides a number
// that lexing finds.
func FuzzCheckNumbers(f *testing.F) {
	for _, s := range []string{
		"", "x = 1e12345", "x = 1e1234", "x=1.5e+123456", "x=1.5E-99999", "# 1e99999\n", `x = "1e99999"`,
		"x = <<EOT\n1e99999\nEOT\n", `x = "${1e99999}"`, `{"x": 1e99999}`, `{"x": "\u0024{1e99999}"}`,
		`{"x": "1e99999"}`, "x = 9e9999999999999999999", "x = 1e010000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		for _, name := range []string{"f.hcl", "f.json"} {
			want := checkNumbersSlowly(name, []byte(src))
			got := checkNumbers(name, []byte(src))
			if len(got) != len(want) {
				t.Fatalf("%s %q: %d diagnostics, lexing finds %d", name, src, len(got), len(want))
			}
		}
	})
}

func TestValidIdentifierMatchesHCL(t *testing.T) {
	var names []string
	for c := 0; c < 128; c++ {
		names = append(names, string(rune(c)))
		for _, d := range "aZ_-0.9 é" {
			names = append(names, string(rune(c))+string(d), string(d)+string(rune(c)))
		}
	}
	names = append(names, "", "step", "core-noop", "a_b-c9", "é", "aé", "a\u0301", "9a", "-a", "a.b", "ab\n")
	for _, n := range names {
		if got, want := validIdentifier(n), hclsyntax.ValidIdentifier(n); got != want {
			t.Errorf("validIdentifier(%q) = %v, hclsyntax says %v", n, got, want)
		}
	}
}

func FuzzValidIdentifier(f *testing.F) {
	for _, s := range []string{"a", "a-b", "_x", "é", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if got, want := validIdentifier(n), hclsyntax.ValidIdentifier(n); got != want {
			t.Errorf("validIdentifier(%q) = %v, hclsyntax says %v", n, got, want)
		}
	})
}

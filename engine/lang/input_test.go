package lang

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// summaries renders the error diagnostics of diags as "Summary" or
// "Summary at line:col".
func summaries(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Subject != nil {
			s += fmt.Sprintf(" at %d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		out = append(out, s)
	}
	return out
}

func nestingDiags(diags hcl.Diagnostics) []string {
	var out []string
	for _, s := range summaries(diags) {
		if strings.HasPrefix(s, "Nesting too deep") {
			out = append(out, s)
		}
	}
	return out
}

func TestFileSizeCap(t *testing.T) {
	t.Setenv(MaxFileSizeEnv, "1000")
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		src := "# " + strings.Repeat("x", size-3) + "\n"
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, diags := Load(write("at-limit.hcl", 1000))
	if diags.HasErrors() {
		t.Fatalf("a file of exactly the limit: %v", diags)
	}
	_, diags = Load(write("over.hcl", 1001))
	if diff := cmp.Diff([]string{"Runbook file too large"}, summaries(diags)); diff != "" {
		t.Errorf("runbook over the limit (-want +got):\n%s", diff)
	}
	if !strings.Contains(diags.Error(), MaxFileSizeEnv) {
		t.Errorf("the diagnostic does not say how to raise the limit: %v", diags)
	}
	_, diags = cfg.ResolveVariables(VarSources{Files: []string{write("over.vars.hcl", 1001)}})
	if diff := cmp.Diff([]string{"Variables file too large"}, summaries(diags)); diff != "" {
		t.Errorf("variables file over the limit (-want +got):\n%s", diff)
	}
	// Endless input is refused after the limit, not read to the end.
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, diags = Load("/dev/zero")
		if diff := cmp.Diff([]string{"Runbook file too large"}, summaries(diags)); diff != "" {
			t.Errorf("/dev/zero as a runbook (-want +got):\n%s", diff)
		}
		_, diags = cfg.ResolveVariables(VarSources{Files: []string{"/dev/zero"}})
		if diff := cmp.Diff([]string{"Variables file too large"}, summaries(diags)); diff != "" {
			t.Errorf("/dev/zero as a variables file (-want +got):\n%s", diff)
		}
		cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("output \"o\" {\n  value = file(\"/dev/zero\")\n}\n")})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		_, diags = (&Scope{Config: cfg}).Outputs()
		if !strings.Contains(diags.Error(), "/dev/zero is larger than 1000 bytes") {
			t.Errorf("file(\"/dev/zero\"): %v", diags)
		}
	}
}

func TestMaxFileSize(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int64
	}{{"", DefaultMaxFileSize}, {"5", 5}, {"0", DefaultMaxFileSize}, {"-1", DefaultMaxFileSize}, {"lots", DefaultMaxFileSize}} {
		t.Setenv(MaxFileSizeEnv, tc.env)
		if got := maxFileSize(); got != tc.want {
			t.Errorf("%s=%q: %d, want %d", MaxFileSizeEnv, tc.env, got, tc.want)
		}
	}
}

func TestNestingLimit(t *testing.T) {
	deep := func(open, close string, n int) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	tests := []struct {
		name, file, src string
		want            []string
	}{
		{"brackets at the limit", "main.hcl", "locals {\n  x = " + deep("[", "]", MaxNesting-1) + "\n}\n", nil},
		{"brackets past the limit", "main.hcl", "locals {\n  x = " + deep("[", "]", MaxNesting) + "\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 2:%d", 6+MaxNesting)}}, // the locals block is one level
		{"parentheses", "main.hcl", "locals {\n  x = " + deep("(", ")", 100000) + "\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 2:%d", 6+MaxNesting)}},
		{"braces", "main.hcl", "locals {\n  x = " + deep("{", "}", MaxNesting) + "\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 2:%d", 6+MaxNesting)}},
		{"interpolations", "main.hcl", "locals {\n  x = " + deep(`"${`, `}"`, MaxNesting) + "\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 2:%d", 5+3*MaxNesting/2)}}, // two levels each
		{"in a comment", "main.hcl", "# " + deep("[", "]", 100000) + "\n/* " + deep("(", "", 5000) + " */\n// " + deep("{", "", 5000) + "\n", nil},
		{"in a string", "main.hcl", "locals {\n  x = \"" + deep("[", "]", 5000) + "\\\"$${\"\n}\n", nil},
		{"in a heredoc", "main.hcl", "locals {\n  x = <<-EOT\n  " + deep("[", "]", 5000) + "\n  EOT\n  y = 1\n}\n", nil},
		{"after a heredoc", "main.hcl", "locals {\n  x = <<EOT\n[\n EOT \n  y = " + deep("[", "]", MaxNesting) + "\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 5:%d", 6+MaxNesting)}},
		{"in a heredoc's interpolation", "main.hcl", "locals {\n  x = <<EOT\n${" + deep("[", "]", MaxNesting) + "}\nEOT\n}\n",
			[]string{fmt.Sprintf("Nesting too deep at 3:%d", 3+MaxNesting-3)}},
		{"not UTF-8 in a comment", "main.hcl", "# caf\xe9\nlocals {\n  x = 1\n}\n", nil},
		{"not UTF-8 in a string", "main.hcl", "locals {\n  x = \"caf\xe9\"\n}\n", []string{"Invalid character encoding at 2:11"}},
		{"JSON", "main.runbook.json", `{"locals": {"x": ` + deep("[", "]", MaxNesting) + `}}`,
			[]string{fmt.Sprintf("Nesting too deep at 1:%d", 18+MaxNesting-2)}},
		{"JSON string", "main.runbook.json", `{"locals": {"x": "` + deep("[", "]", 5000) + `"}}`, nil},
		{"JSON interpolation", "main.runbook.json", `{"locals": {"x": "${` + deep("[", "]", MaxNesting) + `}"}}`,
			[]string{"Nesting too deep at 1:18"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := LoadSources(map[string][]byte{tc.file: []byte(tc.src)})
			got := nestingDiags(diags)
			if slices.ContainsFunc(summaries(diags), func(s string) bool { return strings.HasPrefix(s, "Invalid character encoding") }) {
				got = summaries(diags)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Variables files, -var values and templates are checked too.
func TestNestingLimitInVariables(t *testing.T) {
	cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("variable \"n\" {\n  type = any\n}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	want := []string{fmt.Sprintf("Nesting too deep at 1:%d", 5+MaxNesting)}
	for _, file := range []string{"v.hcl", "v.json"} {
		src := "n = " + deep
		if file == "v.json" {
			src = `{"n":` + deep + "}"
		}
		_, diags := cfg.parseVarFile(file, []byte(src))
		if diff := cmp.Diff(want, summaries(diags)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", file, diff)
		}
	}
	_, diags = cfg.ResolveVariables(VarSources{Args: []string{"n=" + deep}})
	if diff := cmp.Diff([]string{fmt.Sprintf("Nesting too deep at 1:%d", MaxNesting+1)}, nestingDiags(diags)); diff != "" {
		t.Errorf("-var (-want +got):\n%s", diff)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.tpl"), []byte("${"+deep+"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Functions(dir)["templatefile"].Call([]cty.Value{cty.StringVal("t.tpl"), cty.EmptyObjectVal})
	if err == nil || !strings.Contains(err.Error(), "Nesting too deep") {
		t.Errorf("templatefile: %v", err)
	}
}

// lexedNesting is how deeply the HCL lexer's tokens of src nest, popped
// the way nestingOffset pops.
func lexedNesting(src []byte, template bool) int {
	var toks hclsyntax.Tokens
	var stack []hclsyntax.TokenType
	if template {
		toks, _ = hclsyntax.LexTemplate(src, "f", hcl.InitialPos)
		stack = append(stack, hclsyntax.TokenEOF)
	} else {
		toks, _ = hclsyntax.LexConfig(src, "f", hcl.InitialPos)
	}
	popTo := func(kinds ...hclsyntax.TokenType) {
		for j := len(stack) - 1; j >= 0; j-- {
			if slices.Contains(kinds, stack[j]) {
				stack = stack[:j]
				return
			}
		}
	}
	most := len(stack)
	for _, tok := range toks {
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			stack = append(stack, tok.Type)
			most = max(most, len(stack))
		case hclsyntax.TokenCBrack:
			if len(stack) > 0 && stack[len(stack)-1] == hclsyntax.TokenOBrack {
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenCParen:
			if len(stack) > 0 && stack[len(stack)-1] == hclsyntax.TokenOParen {
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenCBrace, hclsyntax.TokenTemplateSeqEnd:
			popTo(hclsyntax.TokenOBrace, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl)
		case hclsyntax.TokenCQuote:
			popTo(hclsyntax.TokenOQuote)
		case hclsyntax.TokenCHeredoc:
			popTo(hclsyntax.TokenOHeredoc)
		}
	}
	return most
}

// FuzzNesting: the nesting scan never misses nesting the HCL lexer finds,
// so no input reaches the parser nested deeper than MaxNesting.
func FuzzNesting(f *testing.F) {
	for _, s := range []string{
		"x = [[1]]", `x = "${[1]}"`, "x = <<EOT\n${[[1]]}\nEOT\n", "x = <<-EOT\n  [\n  EOT\ny = [1]\n",
		"# [[[\nx = 1", "/* [[ */ x = ([1])", `x = "\"${"$${"}"`, `x = "%{ if [1] }a%{ endif }"`, "x = { a = [{}] }",
		"x = \"${\"${\"${1}\"}\"}\"", "x = <<A\n<<B\nA\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, template := range []bool{false, true} {
			lexed := lexedNesting(src, template)
			if _, bad := nestingOffset(src, template, len(src)+1); bad {
				continue // refused: the parser never sees it
			}
			for limit := 1; limit < lexed; limit++ {
				if off, _ := nestingOffset(src, template, limit); off < 0 {
					t.Fatalf("template=%v %q: the lexer nests %d levels; the scan finds no more than %d", template, src, lexed, limit)
				}
			}
		}
	})
}

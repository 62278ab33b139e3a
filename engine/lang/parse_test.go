package lang

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// steps is a runbook of n small steps, each about 60 bytes.
func steps(n int, body string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "step \"core.noop\" \"s%d\" {\n%s}\n", i, body)
	}
	return b.String()
}

// checkSameParse asserts that parseHCL gives what one hclsyntax parse
// gives, and reports whether the file was really parsed in pieces.
func checkSameParse(t *testing.T, src string) (split bool) {
	t.Helper()
	want, wantDiags := hclsyntax.ParseConfig([]byte(src), "main.hcl", hcl.InitialPos)
	got, gotDiags := parseHCL([]byte(src), "main.hcl")
	if diff := cmp.Diff(diagTexts(wantDiags), diagTexts(gotDiags)); diff != "" {
		t.Fatalf("diagnostics differ (-one parse +parseHCL):\n%s", diff)
	}
	if !reflect.DeepEqual(want.Body, got.Body) {
		t.Fatalf("bodies differ")
	}
	if string(got.Bytes) != src {
		t.Fatalf("file bytes are not the source")
	}
	// The navigation names the enclosing block of any offset.
	type nav interface{ ContextString(int) string }
	for _, off := range []int{0, len(src) / 3, len(src) / 2, len(src) - 2} {
		if off < 0 {
			continue
		}
		w, g := want.Nav.(nav).ContextString(off), got.Nav.(nav).ContextString(off)
		if w != g {
			t.Fatalf("context of offset %d: got %q, want %q", off, g, w)
		}
	}
	cuts := splitPoints([]byte(src), chunkCount(len(src)))
	_, ok := parseChunks([]byte(src), "main.hcl", cuts)
	return len(cuts) > 0 && ok
}

func diagTexts(d hcl.Diagnostics) []string {
	var out []string
	for _, x := range d {
		out = append(out, fmt.Sprintf("%s: %s: %s", x.Subject, x.Summary, x.Detail))
	}
	return out
}

func TestParseHCLInPieces(t *testing.T) {
	big := steps(600, "  with = { values = \"x\" }\n")
	heredocCut := strings.Replace(big, "step \"core.noop\" \"s300\" {\n",
		"step \"core.noop\" \"s300\" {\n  with = { values = <<EOT\n}\nstep \"a\" \"b\" {\n}\nstep \"c\" \"d\" {\nEOT\n  }\n", 1)
	commentCut := strings.Replace(big, "step \"core.noop\" \"s300\" {\n",
		"/*\n}\nstep \"a\" \"b\" {\n}\nx = 1\n*/\nstep \"core.noop\" \"s300\" {\n", 1)
	tests := []struct {
		name      string
		src       string
		wantSplit bool
	}{
		{"small file: one piece", steps(3, ""), false},
		{"large file", big, true},
		{"large file with top-level attributes", "a = 1\n" + big + "b = 2\n", true},
		{"same attribute in two pieces", "a = 1\n" + big + "a = 2\n", false},
		{"cut inside a heredoc: one piece", heredocCut, false},
		{"comment holding block boundaries", commentCut, true},
		{"syntax error late in the file", big + "step {\n", false},
		{"syntax error early in the file", "step \"x\" {\n" + big, false},
		{"unterminated heredoc", big + "x = <<EOT\nabc\n", false},
		{"nested blocks closed at column 0", strings.ReplaceAll(big, "  with = { values = \"x\" }\n", "retry {\nattempts = 2\n}\n"), true},
		{"CRLF line endings", strings.ReplaceAll(big, "\n", "\r\n"), false},
		{"no boundaries", strings.ReplaceAll(big, "\n}\n", "}\n"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			split := checkSameParse(t, tc.src)
			if tc.wantSplit && chunkCount(len(tc.src)) > 1 && !split {
				t.Errorf("the file was parsed in one piece; want pieces")
			}
			if !tc.wantSplit && split {
				t.Errorf("the file was parsed in pieces; want one")
			}
		})
	}
}

// A cut that falls inside a heredoc, a comment or an expression must be
// refused, whatever the pieces look like.
func TestParseChunksRefusesInnerCuts(t *testing.T) {
	tests := []struct{ name, src string }{
		{"heredoc", "a = <<EOT\n}\nstep \"a\" \"b\" {\n}\nEOT\n"},
		{"indented heredoc", "step \"x\" \"y\" {\n  a = <<-EOT\n}\nstep \"a\" \"b\" {\n  x = 1\n}\n  EOT\n}\n"},
		{"block comment", "/*\n}\nstep \"a\" \"b\" {\n}\n*/\n"},
		{"list", "a = [\n}\nb = 1\n]\n"},
		{"function call", "a = f(\n}\nb\n)\n"},
		{"template", "a = \"${\n}\nb}\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(tc.src)
			cut := nextBoundary(src, 0)
			if cut < 0 {
				t.Fatalf("no boundary in %q", tc.src)
			}
			if _, ok := parseChunks(src, "main.hcl", []int{cut}); ok {
				t.Errorf("pieces cut at %d accepted for %q", cut, tc.src)
			}
			checkSameParse(t, tc.src)
		})
	}
}

func FuzzParseHCLInPieces(f *testing.F) {
	f.Add(steps(6, "  with = { values = \"x\" }\n"))
	f.Add(steps(4, "  x = <<EOT\n}\nstep \"a\" \"b\" {\nEOT\n"))
	f.Add("a = 1\n" + steps(5, "") + "b = [\n}\nc = 1\n]\n")
	f.Fuzz(func(t *testing.T, src string) {
		want, wantDiags := hclsyntax.ParseConfig([]byte(src), "f.hcl", hcl.InitialPos)
		cuts := splitPoints([]byte(src), 4)
		got, ok := parseChunks([]byte(src), "f.hcl", cuts)
		if len(cuts) == 0 || !ok {
			return
		}
		if wantDiags.HasErrors() || len(wantDiags) > 0 {
			t.Fatalf("pieces parsed cleanly but one parse reports %v", wantDiags)
		}
		if !reflect.DeepEqual(want.Body, got.Body) {
			t.Fatalf("bodies differ")
		}
	})
}

func BenchmarkParseHCL(b *testing.B) {
	src := []byte(steps(1000, ""))
	b.Run("pieces", func(b *testing.B) {
		for b.Loop() {
			parseHCL(src, "main.hcl")
		}
	})
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			hclsyntax.ParseConfig(src, "main.hcl", hcl.InitialPos)
		}
	})
}

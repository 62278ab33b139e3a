package lang

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// hugeNumberRE is what hugeNumbers implements by hand.
var hugeNumberRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.])([0-9]+(?:\.[0-9]+)?[eE][+-]?([0-9]{5,}))`)

// expressionMatches is what hugeNumbers should return for src.
func expressionMatches(src string) [][4]int {
	var out [][4]int
	for _, m := range hugeNumberRE.FindAllSubmatchIndex([]byte(src), -1) {
		out = append(out, [4]int{m[2], m[3], m[4], m[5]})
	}
	return out
}

var numberCases = []string{
	"", "e", "1e", "1e12345", "x = 1e12345", "x = 1e1234", "x=1.5e+123456", "x=1.5E-99999",
	"a1e99999", "_1e99999", ".1e99999", "..5e99999", "1.2.3e99999", "a 1.2.3e99999", "1.e99999",
	"1e12345e99999", "1e12345.5e99999", "1e99999 2e99999", "[1e99999,2e99999]", "12.34e99999",
	"x = \"1e99999\"", "é1e99999", "\xff1e99999", "1e+-99999", "1ee99999", "9e9999999999999999999",
	"x = 3\ny = 4e00005", "-1e99999", "(1.0e77777)", "abc.12e99999", "1_2e99999", "1-2e99999",
}

func TestHugeNumbersMatchesTheExpression(t *testing.T) {
	for _, src := range numberCases {
		if diff := cmp.Diff(expressionMatches(src), hugeNumbers([]byte(src))); diff != "" {
			t.Errorf("%q (-expression +hugeNumbers):\n%s", src, diff)
		}
	}
}

func FuzzHugeNumbers(f *testing.F) {
	for _, s := range numberCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if diff := cmp.Diff(expressionMatches(src), hugeNumbers([]byte(src))); diff != "" {
			t.Errorf("%q (-expression +hugeNumbers):\n%s", src, diff)
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

package lang

import (
	"fmt"
	"math/big"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// maxExponent bounds the decimal exponent of number literals. cty renders
// numbers in full decimal, so 1e99999999 would take minutes to print; no
// runbook needs numbers beyond 1e10000.
const maxExponent = 10000

// checkNumbers reports number literals whose exponent is out of range.
func checkNumbers(name string, src []byte) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, m := range hugeNumbers(src) {
		exp, err := strconv.Atoi(string(src[m[2]:m[3]]))
		if err == nil && exp <= maxExponent {
			continue
		}
		start := posAt(name, src, m[0])
		end := posAt(name, src, m[1])
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Number out of range",
			Detail:   fmt.Sprintf("%s is too large: exponents above %d are not supported.", string(src[m[0]:m[1]]), maxExponent),
			Subject:  &hcl.Range{Filename: name, Start: start, End: end},
		})
	}
	return diags
}

// hugeNumbers finds the number literals with an exponent of five digits or
// more, as the regular expression
//
//	(?:^|[^A-Za-z0-9_.])([0-9]+(?:\.[0-9]+)?[eE][+-]?([0-9]{5,}))
//
// would with FindAllSubmatchIndex (the tests hold it to that), in one pass
// over src: the expression took a sixth of the time to load a large
// runbook. Each match is {number start, number end, exponent start,
// exponent end}.
func hugeNumbers(src []byte) [][4]int {
	var out [][4]int
	for i := 1; i < len(src); i++ {
		if (src[i] != 'e' && src[i] != 'E') || !isDigit(src[i-1]) {
			continue
		}
		// The exponent: an optional sign, then five digits or more.
		es := i + 1
		if es < len(src) && (src[es] == '+' || src[es] == '-') {
			es++
		}
		ee := es
		for ee < len(src) && isDigit(src[ee]) {
			ee++
		}
		if ee-es < 5 {
			continue
		}
		// The mantissa: digits, or digits '.' digits, that start the text
		// or follow a character that cannot be part of a name or number.
		ms := i - 1
		for ms > 0 && isDigit(src[ms-1]) {
			ms--
		}
		if ms >= 2 && src[ms-1] == '.' && isDigit(src[ms-2]) {
			ms -= 2
			for ms > 0 && isDigit(src[ms-1]) {
				ms--
			}
		}
		if ms > 0 {
			if c := src[ms-1]; isDigit(c) || c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				i = ee - 1
				continue
			}
		}
		out = append(out, [4]int{ms, ee, es, ee})
		i = ee - 1
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func posAt(name string, src []byte, off int) hcl.Pos {
	line, col := 1, 1
	for i := 0; i < off && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return hcl.Pos{Line: line, Column: col, Byte: off}
}

// formatNumber renders a number in full decimal when that is reasonable,
// in exponent form otherwise.
func formatNumber(f *big.Float) string {
	if f.IsInf() {
		return f.String()
	}
	if exp := f.MantExp(nil); exp > 256 || exp < -256 {
		return f.Text('g', 20)
	}
	return f.Text('f', -1)
}

// validIdentifier is hclsyntax.ValidIdentifier with a fast path for ASCII
// names (hclsyntax runs its whole scanner on each name).
func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return hclsyntax.ValidIdentifier(s)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

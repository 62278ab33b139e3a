package lang

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// maxExponent bounds the decimal exponent of number literals. cty renders
// numbers in full decimal, so 1e99999999 would take minutes to print; no
// runbook needs numbers beyond 1e10000.
const maxExponent = 10000

var hugeNumber = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.])([0-9]+(?:\.[0-9]+)?[eE][+-]?([0-9]{5,}))`)

// checkNumbers reports number literals whose exponent is out of range.
func checkNumbers(name string, src []byte) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, m := range hugeNumber.FindAllSubmatchIndex(src, -1) {
		exp, err := strconv.Atoi(string(src[m[4]:m[5]]))
		if err == nil && exp <= maxExponent {
			continue
		}
		start := posAt(name, src, m[2])
		end := posAt(name, src, m[3])
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Number out of range",
			Detail:   fmt.Sprintf("%s is too large: exponents above %d are not supported.", string(src[m[2]:m[3]]), maxExponent),
			Subject:  &hcl.Range{Filename: name, Start: start, End: end},
		})
	}
	return diags
}

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

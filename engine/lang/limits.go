package lang

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// maxExponent bounds the decimal exponent of number literals. cty renders
// numbers in full decimal, so 1e99999999 would take minutes to print; no
// runbook needs numbers beyond 1e10000.
const maxExponent = 10000

// checkNumbers reports number literals whose exponent is out of range.
// Only real number literals count: tokens of the native syntax (a number
// inside a comment, a quoted string or a heredoc is text), numbers of the
// JSON syntax and the interpolations of its strings. name ending in .json
// selects the JSON syntax.
func checkNumbers(name string, src []byte) hcl.Diagnostics {
	isJSON := strings.HasSuffix(name, ".json")
	// Nearly every file holds no candidate at all: skip lexing it a second
	// time (the parser lexes it too). A JSON \u escape could spell one.
	if !mayHoldHugeNumber(src) && !(isJSON && bytes.Contains(src, []byte(`\u`))) {
		return nil
	}
	if isJSON {
		return checkJSONNumbers(name, src)
	}
	toks, _ := hclsyntax.LexConfig(src, name, hcl.InitialPos)
	return checkNumberTokens(toks, nil)
}

// checkNumberTokens reports the number literals among toks whose exponent
// is out of range, with subject as their range when it is set (the JSON
// string holding them) and their own range otherwise.
func checkNumberTokens(toks hclsyntax.Tokens, subject *hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range toks {
		if t.Type != hclsyntax.TokenNumberLit || !exponentTooLarge(t.Bytes) {
			continue
		}
		rng := t.Range
		if subject != nil {
			rng = *subject
		}
		diags = append(diags, hugeNumber(t.Bytes, rng))
	}
	return diags
}

func hugeNumber(num []byte, rng hcl.Range) *hcl.Diagnostic {
	detail := fmt.Sprintf("%s is too large: exponents above %d are not supported.", num, maxExponent)
	if i := bytes.IndexAny(num, "eE"); i >= 0 && i+1 < len(num) && num[i+1] == '-' {
		detail = fmt.Sprintf("%s is too small (too precise): exponents below -%d are not supported.", num, maxExponent)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Number out of range",
		Detail:   detail,
		Subject:  rng.Ptr(),
	}
}

// exponentTooLarge reports whether the number literal num has an exponent
// beyond ±maxExponent. A malformed exponent is left to the parser.
func exponentTooLarge(num []byte) bool {
	i := bytes.IndexAny(num, "eE")
	if i < 0 {
		return false
	}
	e := num[i+1:]
	if len(e) > 0 && (e[0] == '+' || e[0] == '-') {
		e = e[1:]
	}
	if len(e) == 0 || bytes.ContainsFunc(e, func(r rune) bool { return r < '0' || r > '9' }) {
		return false
	}
	e = bytes.TrimLeft(e, "0")
	if len(e) > 9 {
		return true
	}
	n, _ := strconv.Atoi(string(e))
	return n > maxExponent
}

// mayHoldHugeNumber reports whether src holds a digit, 'e' or 'E', an
// optional sign and five digits or more: every number literal with an
// exponent out of range looks like that.
func mayHoldHugeNumber(src []byte) bool {
	for i := 1; i < len(src); i++ {
		if (src[i] != 'e' && src[i] != 'E') || !isDigit(src[i-1]) {
			continue
		}
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		n := 0
		for j+n < len(src) && isDigit(src[j+n]) {
			n++
		}
		if n >= 5 {
			return true
		}
	}
	return false
}

// checkJSONNumbers scans src the way the JSON syntax's scanner does: the
// numbers outside strings are checked, and so are the interpolations of
// strings (which the JSON syntax evaluates as templates). Scanning stops
// where the scanner would.
func checkJSONNumbers(name string, src []byte) hcl.Diagnostics {
	var diags hcl.Diagnostics
	rangeOf := func(start, end int) hcl.Range {
		return hcl.Range{Filename: name, Start: posAt(name, src, start), End: posAt(name, src, end)}
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case strings.IndexByte(" \t\r\n{}[],:=", c) >= 0:
			i++
		case c == '"':
			end := jsonStringEnd(src, i)
			var s string
			if err := json.Unmarshal(src[i:end], &s); err == nil && (strings.Contains(s, "${") || strings.Contains(s, "%{")) {
				rng := rangeOf(i, end)
				toks, _ := hclsyntax.LexTemplate([]byte(s), name, rng.Start)
				diags = append(diags, checkNumberTokens(toks, &rng)...)
			}
			i = end
		case strings.IndexByte("-+.0123456789", c) >= 0:
			end := i
			for end < len(src) && strings.IndexByte("-+.eE0123456789", src[end]) >= 0 {
				end++
			}
			if exponentTooLarge(src[i:end]) {
				diags = append(diags, hugeNumber(src[i:end], rangeOf(i, end)))
			}
			i = end
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			for i < len(src) && (src[i] >= 'a' && src[i] <= 'z' || src[i] >= 'A' && src[i] <= 'Z' || src[i] == '_') {
				i++
			}
		default:
			return diags // the scanner stops here too
		}
	}
	return diags
}

// jsonStringEnd is the offset after the JSON string that starts at
// src[start] (a quote): after its closing quote, or where a control
// character or the end of src cuts it short.
func jsonStringEnd(src []byte, start int) int {
	escaping := false
	for i := start + 1; i < len(src); i++ {
		switch b := src[i]; {
		case b == '\\':
			escaping = !escaping
		case b == '"':
			if !escaping {
				return i + 1
			}
			escaping = false
		case b < 32:
			return i
		default:
			escaping = false
		}
	}
	return len(src)
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

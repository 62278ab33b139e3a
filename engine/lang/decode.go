package lang

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// jsondecode and yamldecode decode recursively, without a bound: a string
// of 2,000,000 "[" took 13 s and ended the process with a Go stack
// overflow (deciding the result's type already decodes), and 200,000 in
// YAML did not finish in ten minutes. Text that nests deeper than a runbook
// may (MaxNesting) is refused before it is decoded: exactly for JSON, by
// an upper bound for YAML.

// boundDepth wraps a decoding function of one string so that a string
// deepAt finds too deep (at an offset >= 0, saying why) is an error.
func boundDepth(f function.Function, what string, deepAt func(s string, limit int) (int, string)) function.Function {
	check := func(args []cty.Value) error {
		v, _ := args[0].Unmark()
		if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
			return nil
		}
		if off, why := deepAt(v.AsString(), MaxNesting); off >= 0 {
			return function.NewArgErrorf(0, "the %s %s (at byte %d), and is not decoded: a runbook's values may nest at most %d levels", what, why, off, MaxNesting)
		}
		return nil
	}
	spec := &function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		Type: func(args []cty.Value) (cty.Type, error) {
			if err := check(args); err != nil {
				return cty.NilType, err
			}
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if err := check(args); err != nil {
				return cty.NilVal, err
			}
			return f.Call(args)
		},
	}
	return function.New(spec)
}

// jsonDeepAt is the offset in s where JSON arrays and objects first nest
// deeper than limit, or -1. It errs on the side of depth: brackets that do
// not match (invalid JSON, which decoding refuses anyway) count too.
func jsonDeepAt(s string, limit int) (int, string) {
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > limit {
				return i, fmt.Sprintf("nests more than %d levels deep", limit)
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return -1, ""
}

// yamlMaxFlow bounds the [ and { a string given to yamldecode may hold:
// the YAML decoder takes time quadratic in the nesting of flow collections
// (8,000 levels: a second; 200,000: not done in ten minutes), and the
// count bounds that nesting whatever quotes, comments and block scalars
// hold.
const yamlMaxFlow = 5 * MaxNesting

// yamlDeepAt is the offset in s where YAML may first nest deeper than
// limit, or -1, with what it found there. Without parsing, it bounds from
// above the nesting of block collections, which are indented further or
// opened on the same line ("- - x", "- a: b", "? - x"), by twice the
// indentation plus the indicators on a line; and the nesting of flow
// collections by their number (see yamlMaxFlow). A value that passes and
// still nests deeper than limit is refused once decoded (checkStorable).
func yamlDeepAt(s string, limit int) (int, string) {
	flow, indent, indicators := 0, 0, 0
	inIndent := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n':
			indent, indicators, inIndent = 0, 0, true
			continue
		case inIndent && c == ' ':
			indent++
		case c == '[' || c == '{':
			inIndent = false
			if flow++; flow > yamlMaxFlow {
				return i, fmt.Sprintf("holds more than %d flow collections ([...] or {...})", yamlMaxFlow)
			}
		case c == '-' || c == '?' || c == ':':
			inIndent = false
			if i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t' || s[i+1] == '\r' || s[i+1] == '\n' {
				indicators++
			}
		default:
			inIndent = false
		}
		if 2*indent+indicators+1 > limit {
			return i, fmt.Sprintf("may nest more than %d levels deep", limit)
		}
	}
	return -1, ""
}

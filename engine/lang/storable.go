package lang

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Every value a run uses (variables, step inputs, rollback inputs,
// outputs) is journaled before the engine acts on it, so a value the
// journal cannot store must be refused where it is evaluated, as a
// diagnostic of the step or block, before any effect: found only when the
// journal writes it, it used to stop the engine mid-run, with no rollback.
// The journal stores JSON, which has no infinity, and reads it back with
// encoding/json, which refuses nesting beyond 10,000 levels.

// maxDepth bounds how deeply a value may nest (objects, maps, lists, sets
// and tuples inside one another). Real inputs nest a few levels; the
// journal also writes a value's type, which nests about twice as deep.
const maxDepth = 100

// Numbers the journal stores are those of number literals: below 1e10001
// in size (maxExponent), and from 1e-10000 up when not zero. Beyond them,
// rendering a number in full decimal for the journal takes too long.
var (
	tooLarge = mustParseFloat("1e10001")
	tooSmall = mustParseFloat("1e-10000")
)

func mustParseFloat(s string) *big.Float {
	f, _, err := big.ParseFloat(s, 10, 512, big.ToNearestEven)
	if err != nil {
		panic(err)
	}
	return f
}

// storable returns v and diags, or cty.DynamicVal and diags with the
// diagnostic of checkStorable when the journal cannot store v. It changes
// nothing when diags already holds an error.
func storable(v cty.Value, diags hcl.Diagnostics, attr, of string, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	if diags.HasErrors() {
		return v, diags
	}
	if d := checkStorable(v, attr, of, rng); d != nil {
		return cty.DynamicVal, append(diags, d...)
	}
	return v, diags
}

// checkStorable reports the first part of v the journal cannot store: an
// infinite number, a number out of range, or nesting deeper than maxDepth.
// attr names the value ("with", "var.n"), of the block it belongs to
// ("step \"db\""; "" for none), and rng is where the diagnostic points.
// Unknown parts (at plan time) are not checked.
func checkStorable(v cty.Value, attr, of string, rng hcl.Range) hcl.Diagnostics {
	if v == cty.NilVal {
		return nil
	}
	ty := v.Type()
	deep, hasNumber := typeDepth(ty, 1, false)
	var path []string
	var problem string
	switch {
	case deep:
		// Walk again in a fixed order to name the same path every time.
		path, _ = deepPath(ty, 1)
		problem = fmt.Sprintf("nests more than %d levels deep", maxDepth)
	case hasNumber:
		// Attributes in map order find whether there is a problem without
		// sorting names; name order then finds the same one every time.
		if _, problem = badNumber(v, false); problem != "" {
			path, problem = badNumber(v, true)
		}
	}
	if problem == "" {
		return nil
	}
	slices.Reverse(path)
	if of != "" {
		of = " of " + of
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Value the journal cannot store",
		Detail: fmt.Sprintf("%s%s %s. Every value a run uses is journaled before the engine acts on it, "+
			"and the journal stores finite numbers up to 1e%d, nested at most %d levels deep.",
			attr+formatSteps(path), of, problem, maxExponent, maxDepth),
		Subject: rng.Ptr(),
	}}
}

// typeDepth reports whether ty nests deeper than maxDepth, counting from
// depth, and whether it holds a number (or a dynamic part that may).
func typeDepth(ty cty.Type, depth int, hasNumber bool) (deep, number bool) {
	switch {
	case ty == cty.Number || ty == cty.DynamicPseudoType:
		return false, true
	case ty.IsPrimitiveType() || ty.IsCapsuleType():
		return false, hasNumber
	case depth > maxDepth:
		return true, hasNumber
	case ty.IsObjectType():
		for _, at := range ty.AttributeTypes() {
			if deep, hasNumber = typeDepth(at, depth+1, hasNumber); deep {
				return true, hasNumber
			}
		}
		return false, hasNumber
	case ty.IsTupleType():
		for _, et := range ty.TupleElementTypes() {
			if deep, hasNumber = typeDepth(et, depth+1, hasNumber); deep {
				return true, hasNumber
			}
		}
		return false, hasNumber
	}
	return typeDepth(ty.ElementType(), depth+1, hasNumber) // list, set, map
}

// deepPath is the path, last step first, to the first part of ty that
// nests deeper than maxDepth (attributes in name order); ok is false when
// there is none.
func deepPath(ty cty.Type, depth int) (path []string, ok bool) {
	switch {
	case ty.IsPrimitiveType() || ty.IsCapsuleType() || ty == cty.DynamicPseudoType:
		return nil, false
	case depth > maxDepth:
		return nil, true
	case ty.IsObjectType():
		atys := ty.AttributeTypes()
		for _, name := range mapKeys(atys) {
			if p, ok := deepPath(atys[name], depth+1); ok {
				return append(p, attrStep(name)), true
			}
		}
		return nil, false
	case ty.IsTupleType():
		for i, et := range ty.TupleElementTypes() {
			if p, ok := deepPath(et, depth+1); ok {
				return append(p, "["+strconv.Itoa(i)+"]"), true
			}
		}
		return nil, false
	}
	if p, ok := deepPath(ty.ElementType(), depth+1); ok { // list, set, map
		return append(p, "[*]"), true
	}
	return nil, false
}

// badNumber finds a number in v the journal cannot store, the first in
// attribute and key order when sorted, and returns its path, last step
// first, with the problem; problem is "" when every number is fine. v
// nests at most maxDepth levels (typeDepth said so).
func badNumber(v cty.Value, sorted bool) (path []string, problem string) {
	v, _ = v.Unmark()
	if !v.IsKnown() || v.IsNull() {
		return nil, ""
	}
	ty := v.Type()
	switch {
	case ty == cty.Number:
		return nil, numberProblem(v.AsBigFloat())
	case ty.IsObjectType():
		atys := ty.AttributeTypes()
		if !sorted {
			for name := range atys {
				if _, problem := badNumber(v.GetAttr(name), false); problem != "" {
					return nil, problem
				}
			}
			return nil, ""
		}
		for _, name := range mapKeys(atys) {
			if p, problem := badNumber(v.GetAttr(name), true); problem != "" {
				return append(p, attrStep(name)), problem
			}
		}
	case ty.IsListType() || ty.IsTupleType() || ty.IsMapType() || ty.IsSetType():
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			if p, problem := badNumber(e, sorted); problem != "" {
				return append(p, indexStep(ty, k)), problem
			}
		}
	}
	return nil, ""
}

// numberProblem says what is wrong with f for the journal, or "".
func numberProblem(f *big.Float) string {
	if f.IsInf() {
		return fmt.Sprintf("is %s (a result out of range, as from pow(10, 400))", f.String())
	}
	if f.Sign() == 0 {
		return ""
	}
	// 2^33000 is about 1e9934: only numbers around the limits are compared
	// exactly.
	if exp := f.MantExp(nil); exp > -33000 && exp < 33000 {
		return ""
	}
	abs := new(big.Float).Abs(f)
	switch {
	case abs.Cmp(tooLarge) >= 0:
		return "is too large a number (1e10001 or more)"
	case abs.Cmp(tooSmall) < 0:
		return "is too small a number (below 1e-10000, and not zero)"
	}
	return ""
}

func attrStep(name string) string {
	if validIdentifier(name) {
		return "." + name
	}
	return "[" + strconv.Quote(name) + "]"
}

func indexStep(ty cty.Type, k cty.Value) string {
	switch {
	case ty.IsSetType():
		return "[*]"
	case ty.IsMapType():
		return "[" + strconv.Quote(k.AsString()) + "]"
	}
	i, _ := k.AsBigFloat().Int64()
	return "[" + strconv.FormatInt(i, 10) + "]"
}

// formatSteps joins path steps; a long path keeps its first steps only.
func formatSteps(path []string) string {
	const keep = 6
	if len(path) > keep {
		return strings.Join(path[:keep], "") + "…"
	}
	return strings.Join(path, "")
}

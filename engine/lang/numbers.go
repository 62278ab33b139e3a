package lang

import (
	"fmt"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// The number literals of a runbook are checked before it is parsed
// (checkNumbers), but arithmetic makes larger numbers out of small ones:
// ten squarings of 1e10000 took 29 s and 147 MB to render. Every result
// of multiplication, division and the functions that make numbers out of
// text is checked, so a number out of range is an error where it is made.

func init() {
	// The parser of every runbook uses these operations; they are set once,
	// before any runbook is parsed.
	hclsyntax.OpMultiply.Impl = boundNumbers(stdlib.MultiplyFunc, true)
	hclsyntax.OpDivide.Impl = boundNumbers(stdlib.DivideFunc, true)
}

// boundNumbers wraps f so that a result holding a number the journal
// could not store (numberProblem) is an error. notNull says that f's
// result is never null, as f's own refinement of unknown results did.
func boundNumbers(f function.Function, notNull bool) function.Function {
	spec := &function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err != nil {
				return v, err
			}
			if typeHasNumber(v.Type()) {
				if _, problem := badNumber(v, false); problem != "" {
					return cty.NilVal, fmt.Errorf("the result %s; numbers range up to 1e%d and down to 1e-%d", problem, maxExponent, maxExponent)
				}
			}
			return v, nil
		},
	}
	if p := f.VarParam(); p != nil {
		spec.VarParam = p
	}
	if notNull {
		spec.RefineResult = func(b *cty.RefinementBuilder) *cty.RefinementBuilder { return b.NotNull() }
	}
	return function.New(spec)
}

// typeHasNumber reports whether values of ty may hold a number. Values
// nest at most maxDepth levels here only when ty does (badNumber walks
// them): deeper types are reported by checkStorable, not searched.
func typeHasNumber(ty cty.Type) bool {
	deep, number := typeDepth(ty, 1, false)
	return number && !deep
}

// numberFunctions are the functions that make numbers out of text,
// bounded. (pow computes in float64: out of range it is infinite, which
// checkStorable refuses and which renders quickly.)
var numberFunctions = map[string]function.Function{
	"tonumber":   boundNumbers(stdlib.MakeToFunc(cty.Number), false),
	"parseint":   boundNumbers(stdlib.ParseIntFunc, true),
	"jsondecode": boundNumbers(boundDepth(stdlib.JSONDecodeFunc, "JSON", jsonDeepAt), false),
	"yamldecode": boundNumbers(boundDepth(ctyyaml.YAMLDecodeFunc, "YAML", yamlDeepAt), false),
}

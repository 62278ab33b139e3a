package lang

import (
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// nested is v inside n one-element tuples.
func nested(n int, v cty.Value) cty.Value {
	for range n {
		v = cty.TupleVal([]cty.Value{v})
	}
	return v
}

func bigNumber(t *testing.T, s string) cty.Value {
	t.Helper()
	f, _, err := big.ParseFloat(s, 10, 512, big.ToNearestEven)
	if err != nil {
		t.Fatal(err)
	}
	return cty.NumberVal(f)
}

func TestCheckStorable(t *testing.T) {
	obj := func(k string, v cty.Value) cty.Value { return cty.ObjectVal(map[string]cty.Value{k: v}) }
	deepType := cty.String
	for range 150 {
		deepType = cty.List(deepType)
	}
	tests := []struct {
		name string
		v    cty.Value
		want string // the detail up to its first '.', "" for no diagnostic
	}{
		{"fine", obj("n", cty.NumberFloatVal(1.5)), ""},
		{"null and unknown", cty.ObjectVal(map[string]cty.Value{"a": cty.NullVal(cty.Number), "b": cty.UnknownVal(cty.Number), "c": cty.DynamicVal}), ""},
		{"largest numbers", cty.TupleVal([]cty.Value{bigNumber(t, "9.99e10000"), bigNumber(t, "-1e10000"), bigNumber(t, "1e-10000"), bigNumber(t, "-1.5e-10000"), cty.Zero}), ""},
		{"+Inf", obj("n", cty.PositiveInfinity), `with.n of step "s" is +Inf (a result out of range, as from pow(10, 400))`},
		{"-Inf in a list", obj("l", cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NegativeInfinity})), `with.l[1] of step "s" is -Inf (a result out of range, as from pow(10, 400))`},
		{"sensitive Inf", obj("n", cty.PositiveInfinity.Mark(MarkSensitive)).Mark(MarkSensitive), `with.n of step "s" is +Inf`},
		{"in a map", obj("m", cty.MapVal(map[string]cty.Value{"a b": cty.Zero, "c": cty.PositiveInfinity})), `with.m["c"] of step "s" is +Inf`},
		{"attribute that is no identifier", obj("a b", cty.PositiveInfinity), `with["a b"] of step "s" is +Inf`},
		{"in a set", obj("s", cty.SetVal([]cty.Value{cty.Zero, cty.PositiveInfinity})), `with.s[*] of step "s" is +Inf`},
		{"first in name order", cty.ObjectVal(map[string]cty.Value{"b": cty.PositiveInfinity, "a": cty.NegativeInfinity}), `with.a of step "s" is -Inf`},
		{"too large", obj("n", bigNumber(t, "1e10001")), `with.n of step "s" is too large a number (1e10001 or more)`},
		{"too close to zero", obj("n", bigNumber(t, "-1e-10001")), `with.n of step "s" is too small a number (below 1e-10000, and not zero)`},
		{"100 levels", obj("x", nested(99, cty.StringVal("s"))), ""},
		{"101 levels", obj("x", nested(100, cty.StringVal("s"))), `with.x[0][0][0][0][0]… of step "s" nests more than 100 levels deep`},
		{"101 levels in the type only", obj("x", cty.ListValEmpty(deepType)), `with.x[*][*][*][*][*]… of step "s" nests more than 100 levels deep`},
		{"deep and infinite", obj("x", nested(200, cty.PositiveInfinity)), `with.x[0][0][0][0][0]… of step "s" nests more than 100 levels deep`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := hcl.Range{Filename: "main.hcl", Start: hcl.Pos{Line: 3, Column: 4}}
			diags := checkStorable(tc.v, "with", `step "s"`, rng)
			got := ""
			if len(diags) > 0 {
				if len(diags) != 1 || diags[0].Subject == nil || *diags[0].Subject != rng || diags[0].Severity != hcl.DiagError {
					t.Fatalf("diagnostics %v", diags)
				}
				got, _, _ = strings.Cut(diags[0].Detail, ". Every value")
			}
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// deepJSON is a value nested 10×n levels deep, built by functions.
func deepJSON(n int) string {
	return fmt.Sprintf(`jsondecode("${join("", [for i in range(%d) : "[[[[[[[[[["])}${join("", [for i in range(%d) : "]]]]]]]]]]"])}")`, n, n)
}

// Every place lang evaluates a value the journal keeps refuses values it
// cannot store, naming the block and the path inside the value.
func TestEvaluationRefusesUnstorableValues(t *testing.T) {
	type result struct {
		Value string // FormatValue of what came back, "" when nothing
		Diags []string
	}
	eval := func(cfg *Config, what string) result {
		s := &Scope{Config: cfg, RunID: "r"}
		var v cty.Value
		var diags hcl.Diagnostics
		switch what {
		case "inputs":
			v, diags = s.Inputs(cfg.Steps["a"], Instance{Key: cty.NilVal})
		case "rollback":
			in := cty.ObjectVal(map[string]cty.Value{"n": cty.NumberIntVal(1)})
			v, diags = s.RollbackInputs(cfg.Steps["a"], Instance{Key: cty.NilVal}, in, cty.EmptyObjectVal)
		case "outputs":
			var m map[string]cty.Value
			m, diags = s.Outputs()
			v = cty.ObjectVal(m)
		case "locals":
			var m map[string]cty.Value
			m, diags = s.Locals()
			v = cty.ObjectVal(m)
		}
		return result{FormatValue(v, 0), brief(diags)}
	}
	const detail = ". Every value a run uses is journaled before the engine acts on it, and the journal stores finite numbers up to 1e10000, nested at most 100 levels deep."
	tests := []struct {
		name, src, what string
		want            result
	}{
		{"with", "step \"core.exec\" \"a\" {\n  with = { size = pow(10, 400) }\n}", "inputs",
			result{"(known after apply)", []string{`2:10: Value the journal cannot store | with.size of step "a" is +Inf (a result out of range, as from pow(10, 400))` + detail}}},
		{"with, 1,000 levels deep", "step \"core.exec\" \"a\" {\n  with = { v = " + deepJSON(100) + " }\n}", "inputs",
			result{"(known after apply)", []string{`2:10: Value the journal cannot store | with.v[0][0][0][0][0]… of step "a" nests more than 100 levels deep` + detail}}},
		{"with, fine", "step \"core.exec\" \"a\" {\n  with = { v = " + deepJSON(9) + ", n = pow(10, 300) }\n}", "inputs",
			result{"", nil}},
		{"rollback with", "step \"core.exec\" \"a\" {\n  rollback {\n    action = core.exec\n    with = { n = -pow(10, 400) + self.inputs.n }\n  }\n}", "rollback",
			result{"(known after apply)", []string{`4:12: Value the journal cannot store | rollback.with.n of step "a" is -Inf`}}},
		{"output", "output \"o\" {\n  value = [1, pow(10, 400)]\n}", "outputs",
			result{"{}", []string{`2:11: Value the journal cannot store | value[1] of output "o" is +Inf`}}},
		{"sensitive output", "output \"o\" {\n  value = { a = 1e9000 * 1e9000 }\n  sensitive = true\n}", "outputs",
			result{"{}", []string{`2:17: Operation failed | Error during operation: the result is too large a number`}}},
		{"local", "locals {\n  big = 1e-9000 / 1e9000\n}", "locals",
			result{"{\n  big = (known after apply)\n}", []string{`2:9: Operation failed | Error during operation: the result is too small a number`}}},
		{"local used by a step", "locals {\n  big = pow(10, 400)\n}\nstep \"core.exec\" \"a\" {\n  with = { n = local.big }\n}", "inputs",
			result{"{\n  n = (known after apply)\n}", []string{`2:9: Value the journal cannot store | local.big is +Inf`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoadNoCheck(t, tc.src)
			got := eval(cfg, tc.what)
			if tc.want.Value == "" {
				got.Value = ""
			}
			// wantDiags compares by substring; compare the values here.
			if diff := cmp.Diff(tc.want.Value, got.Value); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if len(got.Diags) != len(tc.want.Diags) {
				t.Fatalf("diagnostics:\n%s", strings.Join(got.Diags, "\n"))
			}
			for i, w := range tc.want.Diags {
				if !strings.HasPrefix(got.Diags[i], w) {
					t.Errorf("diagnostic %d:\n got  %s\n want %s", i, got.Diags[i], w)
				}
			}
		})
	}
}

func TestVariablesRefuseUnstorableValues(t *testing.T) {
	_, diags := loadSrc(t, "variable \"d\" {\n  default = { x = 1e9000 * 1e9000 }\n}\nvariable \"n\" {\n  type = number\n  default = 1\n}\n")
	wantDiags(t, diags, []string{`2:19: Operation failed | Error during operation: the result is too large a number`})
	cfg := mustLoadNoCheck(t, "variable \"n\" {\n  type = number\n  default = 1\n}\nvariable \"l\" {\n  type = any\n  default = 1\n}\n")
	for _, tc := range []struct{ arg, want string }{
		{"n=1e9000 * 1e9000", `-: Invalid value for variable | The value from -var n for variable "n" is invalid: Error during operation: the result is too large a number`},
		{"l=[" + strings.Repeat("[", 101) + strings.Repeat("]", 101) + "]", `5:1: Value the journal cannot store | var.l[0][0][0][0][0][0]… nests more than 100 levels deep`},
	} {
		_, diags := cfg.ResolveVariables(VarSources{Args: []string{tc.arg}})
		wantDiags(t, diags, []string{tc.want})
	}
	vals, diags := cfg.ResolveVariables(VarSources{Args: []string{"n=1e9000 * 1e1000"}})
	if diags.HasErrors() || vals["n"].IsNull() {
		t.Errorf("1e10000: %v", diags)
	}
}

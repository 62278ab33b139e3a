package lang

import (
	"strings"
	"testing"
)

// Every diagnostic of the language: source, then each expected diagnostic
// as "LINE:COL: substring of summary | detail", in order.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"syntax error", `step "core.exec" "a" {`, []string{"1:22: Unclosed configuration block"}},
		{"unknown block", `stpe "core.exec" "a" {}`, []string{`1:1: Unsupported block type | Blocks of type "stpe" are not expected here. Did you mean "step"?`}},
		{"bad step type", `step "exec" "a" {}`, []string{`1:6: Invalid step type | The step type "exec" must be PLUGIN.ACTION`}},
		{"bad step name", `step "core.exec" "9a" { with = { command = "x" } }`, []string{`1:18: Invalid step name`}},
		{"duplicate step", "step \"core.exec\" \"a\" {\n with = { command = \"x\" }\n}\nstep \"core.exec\" \"a\" {\n with = { command = \"x\" }\n}",
			[]string{`4:1: Duplicate step "a" | already declared at main.hcl:1:1`}},
		{"duplicate variable", "variable \"v\" {}\nvariable \"v\" {}", []string{`2:1: Duplicate variable "v"`}},
		{"duplicate local", "locals {\n a = 1\n}\nlocals {\n a = 2\n}", []string{`5:2: Duplicate local "a"`}},
		{"duplicate output", "output \"o\" {\n value = 1\n}\noutput \"o\" {\n value = 2\n}", []string{`4:1: Duplicate output "o"`}},
		{"two runbook blocks", "runbook \"a\" {}\nrunbook \"b\" {}", []string{`2:1: Duplicate runbook block`}},
		{"unknown step argument", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  dependson = []\n}",
			[]string{`3:3: Unsupported argument | An argument named "dependson" is not expected here. Did you mean "depends_on"?`}},
		{"bad timeout", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  timeout = \"5 minutes\"\n}",
			[]string{`3:13: Invalid timeout | "5 minutes" is not a duration`}},
		{"bad on_failure", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  on_failure = \"rolback\"\n}",
			[]string{`3:16: Invalid on_failure | on_failure must be one of "rollback", "continue" or "abort". Did you mean "rollback"?`}},
		{"bad always", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  always = \"yes\"\n}",
			[]string{`3:12: Invalid always | always must be true or false`}},
		{"bad retry", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  retry {\n    attempts = 0\n    backoff = \"linear\"\n  }\n}",
			[]string{`4:16: Invalid retry attempts | at least 1`, `5:15: Invalid backoff | "fixed" or "exponential"`}},
		{"retry without attempts", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  retry {}\n}",
			[]string{`3:9: Missing required argument | The argument "attempts" is required`}},
		{"two retry blocks", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  retry { attempts = 2 }\n  retry { attempts = 3 }\n}",
			[]string{`4:3: Duplicate retry block`}},
		{"bad rollback keyword", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback = nativ\n}",
			[]string{`3:14: Invalid rollback | rollback is either`}},
		{"bad rollback action", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = \"drop\"\n  }\n}",
			[]string{`4:14: Invalid rollback action | PLUGIN.ACTION`}},
		{"bad depends_on", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  depends_on = [var.x]\n}",
			[]string{`3:17: Invalid depends_on entry | step reference`}},
		{"depends_on unknown step", "step \"core.exec\" \"backup\" {\n  with = { command = \"x\" }\n}\nstep \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  depends_on = [step.bakup]\n}",
			[]string{`6:17: Reference to undeclared step | depends_on names step "bakup", which does not exist. Did you mean "backup"?`}},
		{"undeclared variable", "variable \"domain\" {}\nstep \"core.exec\" \"a\" {\n  with = { command = var.domian }\n}",
			[]string{`3:22: Reference to undeclared variable | There is no variable "domian". Did you mean "domain"?`}},
		{"undeclared variable without suggestion", "output \"o\" {\n  value = var.region\n}",
			[]string{`2:11: Reference to undeclared variable | There is no variable "region". Declare it with a block variable "region" { type = string } or fix the name.`}},
		{"undeclared local", "locals {\n  base = 1\n}\noutput \"o\" {\n  value = local.bsae\n}",
			[]string{`5:11: Reference to undeclared local value | There is no local value "bsae" in any locals block. Did you mean "base"?`}},
		{"undeclared step", "step \"core.exec\" \"source\" {\n  with = { command = \"x\" }\n}\noutput \"o\" {\n  value = step.sorce.outputs.stdout\n}",
			[]string{`5:11: Reference to undeclared step | There is no step "sorce". Did you mean "source"?`}},
		{"unknown root", "output \"o\" {\n  value = vars.x\n}",
			[]string{`2:11: Unknown reference | There is no "vars". References start with "var", "local", "step" or "run". Did you mean "var"?`}},
		{"each outside for_each", "step \"core.exec\" \"a\" {\n  with = { command = each.key }\n}",
			[]string{`2:22: each is not available here | each.key and each.value exist only in a step with for_each`}},
		{"each in for_each", "step \"core.exec\" \"a\" {\n  for_each = each.value\n  with = { command = each.key }\n}",
			[]string{`2:14: each is not available here`}},
		{"bad each attr", "step \"core.exec\" \"a\" {\n  for_each = toset([\"a\"])\n  with = { command = each.name }\n}",
			[]string{`3:22: Invalid each reference | Write each.key or each.value.`}},
		{"self outside rollback", "step \"core.exec\" \"a\" {\n  with = { command = self.inputs.command }\n}",
			[]string{`2:22: self is not available here | only inside a rollback block`}},
		{"bad self attr", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n    with = { command = self.output.stdout }\n  }\n}",
			[]string{`5:24: Invalid self reference`}},
		{"bad run attr", "output \"o\" {\n  value = run.name\n}", []string{`2:11: Invalid run reference | The only attribute of run is run.id.`}},
		{"step attr typo", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}\noutput \"o\" {\n  value = step.a.output.stdout\n}",
			[]string{`5:11: Invalid step reference | A step has inputs and outputs: write step.a.outputs.ATTR. Did you mean "outputs"?`}},
		{"for_each step without key", "step \"core.exec\" \"db\" {\n  for_each = toset([\"a\"])\n  with = { command = \"x\" }\n}\noutput \"o\" {\n  value = step.db.outputs.stdout\n}",
			[]string{`6:11: Missing instance key | Step "db" uses for_each, so it has one instance per key: write step.db[KEY].outputs`}},
		{"key on single step", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}\noutput \"o\" {\n  value = step.a[\"k\"].outputs.stdout\n}",
			[]string{`5:11: Unexpected instance key | Step "a" has no for_each`}},
		{"var in validation of other root", "variable \"v\" {\n  validation {\n    condition = local.x\n    error_message = \"no\"\n  }\n}",
			[]string{`3:17: local is not available here | A validation of variable "v" may refer only to "var".`}},
		{"lock uses step", "runbook \"r\" {\n  lock = step.a.outputs.stdout\n}\nstep \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}",
			[]string{`2:10: step is not available here | The runbook lock may refer only to "var" or "local".`}},
		{"lock through local using step", "runbook \"r\" {\n  lock = local.l\n}\nlocals {\n  l = step.a.outputs.stdout\n}\nstep \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}",
			[]string{`2:10: Lock depends on a step | local.l depends on step "a"`}},
		{"two-step cycle", "step \"core.exec\" \"a\" {\n  with = { command = step.b.outputs.stdout }\n}\nstep \"core.exec\" \"b\" {\n  with = { command = step.a.outputs.stdout }\n}",
			[]string{"2:22: Dependency cycle between steps: step.a -> step.b -> step.a | " +
				"Steps run after the steps they depend on, so these can never start:\n" +
				"  step \"a\" (main.hcl:1:1) depends on step \"b\" at main.hcl:2:22\n" +
				"  step \"b\" (main.hcl:4:1) depends on step \"a\" at main.hcl:5:22"}},
		{"three-step cycle via depends_on and locals", `locals {
  c = step.c.outputs.stdout
}
step "core.exec" "a" {
  with = { command = local.c }
}
step "core.exec" "b" {
  with = { command = "x" }
  depends_on = [step.a]
}
step "core.exec" "c" {
  with = { command = step.b.outputs.stdout }
}`, []string{`5:22: Dependency cycle between steps: step.a -> step.c -> step.b -> step.a`}},
		{"self cycle", "step \"core.exec\" \"a\" {\n  with = { command = step.a.outputs.stdout }\n}",
			[]string{`2:22: Step "a" depends on itself`}},
		{"local cycle", "locals {\n  a = local.b\n  b = local.a\n}",
			[]string{`2:3: Cycle between local values: local.a -> local.b -> local.a`}},
		{"bad variable type", "variable \"v\" {\n  type = strin\n}", []string{`2:10: Invalid type specification | The keyword "strin" is not a valid type specification.`}},
		{"bad variable default", "variable \"v\" {\n  type = number\n  default = \"abc\"\n}",
			[]string{`3:13: Invalid default value for variable | The default of variable "v" does not match its type: a number is required.`}},
		{"non-nullable null default", "variable \"v\" {\n  type = string\n  nullable = false\n  default = null\n}",
			[]string{`4:13: Invalid default value for variable | not nullable`}},
		{"variable default uses var", "variable \"v\" {\n  default = var.w\n}\nvariable \"w\" {}",
			[]string{`2:13: Variables not allowed`}},
		{"duplicate rollback", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n  }\n  rollback {\n    action = core.exec\n  }\n}",
			[]string{`6:3: Duplicate rollback block | A step has at most one rollback.`}},
		{"bare var", "output \"o\" {\n  value = var\n}", []string{`2:11: Invalid variable reference | Write var.NAME.`}},
		{"bare local", "output \"o\" {\n  value = local\n}", []string{`2:11: Invalid local value reference | Write local.NAME.`}},
		{"bare step", "output \"o\" {\n  value = step\n}", []string{`2:11: Invalid step reference | Write step.NAME.outputs.ATTR.`}},
		{"huge number", "output \"o\" {\n  value = 1e99999999\n}", []string{`2:11: Number out of range | 1e99999999 is too large`}},
		{"huge number in string is fine", "output \"o\" {\n  value = \"a1e99999999\"\n}", nil},
		{"output without value", "output \"o\" {}", []string{`1:12: Missing required argument | The argument "value" is required`}},
		{"description not constant", "variable \"a\" {}\nrunbook \"r\" {\n  description = var.a\n}", []string{`3:17: Variables not allowed`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := loadSrc(t, tt.src)
			wantDiags(t, diags, tt.want)
			// Rendering never fails and always shows where.
			out := render(cfg, diags)
			for _, d := range diags {
				if d.Subject != nil && !strings.Contains(out, "main.hcl:") {
					t.Errorf("rendered diagnostics lack file:line:col:\n%s", out)
				}
			}
		})
	}
}

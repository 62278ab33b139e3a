package lang

import (
	"testing"
)

// Phase 2: every diagnostic Check reports, against the fake schemas.
func TestCheckDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"valid", `step "core.exec" "a" { with = { command = "x", args = ["a"], env = { A = "b" } } }`, nil},
		{"unknown plugin", `step "coer.exec" "a" { with = { command = "x" } }`,
			[]string{`1:6: Unknown plugin "coer" | Cannot load plugin "coer": no plugin named "coer"`}},
		{"plugin that fails to start", `step "broken.exec" "a" {}`,
			[]string{`1:6: Plugin "broken" failed to start | plugin broken could not be started: exit status 3`}},
		{"unknown action", `step "core.exce" "a" { with = { command = "x" } }`,
			[]string{`1:6: Unknown action | Plugin "core" has no action "exce". Did you mean "core.exec"?`}},
		{"unknown action without suggestion", `step "core.zzzzzz" "a" {}`,
			[]string{`1:6: Unknown action | Its actions are "assert", "exec", "file", "http" and "noop".`}},
		{"unsupported input", "step \"core.exec\" \"a\" {\n  with = { command = \"x\", agrs = [\"a\"] }\n}",
			[]string{`2:27: Unsupported input "agrs" | Step "a" (core.exec) has no input "agrs". Did you mean "args"?`}},
		{"unsupported input lists inputs", "step \"core.exec\" \"a\" {\n  with = { command = \"x\", zzzzzz = 1 }\n}",
			[]string{`2:27: Unsupported input "zzzzzz" | Its inputs are "command", "args", "env", "timeout" and "read_only".`}},
		{"missing required input", "step \"core.file\" \"a\" {\n  with = { mode = \"0644\" }\n}",
			[]string{"2:10: Missing required inputs \"path\" or \"content\" | Step \"a\" (core.file) needs these inputs in its with:\n  path (string)\n  content (string)"}},
		{"no with at all", "step \"core.exec\" \"a\" {\n}",
			[]string{`1:1: Missing required input "command"`}},
		{"type error", "step \"core.exec\" \"a\" {\n  with = { command = \"x\", args = \"-la\" }\n}",
			[]string{`2:34: Incorrect type for input "args" | Input "args" of step "a" (core.exec) must be list of string, but this is string.`}},
		{"type error nested", "step \"core.exec\" \"a\" {\n  with = { command = [\"ls\"] }\n}",
			[]string{`2:22: Incorrect type for input "command" | must be string, but this is tuple.`}},
		{"type error through variable", "variable \"n\" {\n  type = list(number)\n}\nstep \"core.exec\" \"a\" {\n  with = { command = var.n }\n}",
			[]string{`5:22: Incorrect type for input "command" | must be string`}},
		{"type error through output", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}\nstep \"core.assert\" \"b\" {\n  with = { condition = step.a.outputs.exit_code, message = step.a.outputs.exit_code }\n}",
			[]string{`5:24: Incorrect type for input "condition" | must be bool, but this is number.`}},
		{"unknown output", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}\nstep \"core.exec\" \"b\" {\n  with = { command = step.a.outputs.stdot }\n}",
			[]string{`5:22: Unknown output "stdot" | Step "a" (core.exec) has no output "stdot". Did you mean "stdout"?`}},
		{"unknown output for_each", "step \"core.exec\" \"a\" {\n  for_each = toset([\"x\"])\n  with = { command = each.key }\n}\noutput \"o\" {\n  value = step.a[\"x\"].outputs.code\n}",
			[]string{`6:11: Unknown output "code" | Its outputs are "stdout", "stderr" and "exit_code".`}},
		{"unknown input ref", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}\noutput \"o\" {\n  value = step.a.inputs.comand\n}",
			[]string{`5:11: Unknown input "comand" | Did you mean "command"?`}},
		{"unknown output in local", "locals {\n  x = step.a.outputs.nope\n}\nstep \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n}",
			[]string{`2:7: Unknown output "nope"`}},
		{"native rollback unsupported", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback = native\n}",
			[]string{`3:3: No native undo | Action core.exec has no native undo`}},
		{"rollback unknown action", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.undo\n  }\n}",
			[]string{`3:3: Unknown action | Plugin "core" has no action "undo".`}},
		{"rollback missing input", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n    with = { args = [self.outputs.stdout] }\n  }\n}",
			[]string{`5:12: Missing required input "command" | The rollback of step "a" (core.exec) needs`}},
		{"rollback self type", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n    with = { command = self.outputs.exit_code, args = self.inputs.command }\n  }\n}",
			[]string{`5:55: Incorrect type for input "args"`}},
		{"rollback self unknown attr", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n    with = { command = self.outputs.stdot }\n  }\n}",
			[]string{`5:36: Unsupported attribute | self.outputs has no attribute "stdot". Did you mean "stdout"?`}},
		{"for_each list", "step \"core.exec\" \"a\" {\n  for_each = [\"a\", \"b\"]\n  with = { command = each.key }\n}",
			[]string{`2:14: Invalid for_each | is a list; use a map, or a set of strings: for_each = toset(...).`}},
		{"for_each list variable", "variable \"l\" {\n  type = list(string)\n}\nstep \"core.exec\" \"a\" {\n  for_each = var.l\n  with = { command = each.key }\n}",
			[]string{`5:14: Invalid for_each | is list of string; it must be a map or a set of strings. Convert a list with toset(...).`}},
		{"for_each sensitive", "variable \"l\" {\n  type = set(string)\n  sensitive = true\n}\nstep \"core.exec\" \"a\" {\n  for_each = var.l\n  with = { command = each.key }\n}",
			[]string{`6:14: Invalid for_each | is sensitive`}},
		{"for_each map value type", "variable \"m\" {\n  type = map(number)\n}\nstep \"core.exec\" \"a\" {\n  for_each = var.m\n  with = { command = each.key, args = each.value }\n}",
			[]string{`6:39: Incorrect type for input "args"`}},
		{"when not bool", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  when = [1]\n}",
			[]string{`3:10: Invalid when | must be true or false; got tuple.`}},
		{"with not object", "step \"core.exec\" \"a\" {\n  with = \"command\"\n}",
			[]string{`2:10: Invalid with | must be an object of the action's inputs`}},
		{"with merge unknown key", "step \"core.exec\" \"a\" {\n  with = merge({ command = \"x\" }, { agrs = [] })\n}",
			[]string{`2:10: Unsupported input "agrs" | Did you mean "args"?`}},
		{"with merge type error", "step \"core.exec\" \"a\" {\n  with = merge({ command = \"x\" }, { args = \"x\" })\n}",
			[]string{`2:10: Incorrect type for input "args"`}},
		{"duplicate input", "step \"core.exec\" \"a\" {\n  with = { command = \"x\", command = \"y\" }\n}",
			[]string{`2:27: Duplicate input "command"`}},
		{"function error", "step \"core.exec\" \"a\" {\n  with = { command = upper(1, 2) }\n}",
			[]string{`2:31: Too many function arguments | Function "upper" expects only 1 argument(s).`}},
		{"unknown function", "step \"core.exec\" \"a\" {\n  with = { command = uppr(\"x\") }\n}",
			[]string{`2:22: Call to unknown function | There is no function named "uppr". Did you mean "upper"?`}},
		{"local error", "variable \"o\" {\n  type = object({ a = string })\n}\nlocals {\n  x = var.o.b\n}",
			[]string{`5:12: Unsupported attribute | var.o has no attribute "b". Did you mean "a"?`}},
		{"lock not string", "runbook \"r\" {\n  lock = [1]\n}", []string{`2:10: Invalid lock | must be a string`}},
		{"lock sensitive", "variable \"s\" {\n  sensitive = true\n}\nrunbook \"r\" {\n  lock = var.s\n}", []string{`5:10: Invalid lock | cannot use sensitive values`}},
		{"output error", "output \"o\" {\n  value = 1 + \"a\"\n}", []string{`2:15: Invalid operand`}},
		// A reference reported in phase 1 is not reported again in phase 2.
		{"no duplicate for bad refs", "step \"core.exec\" \"a\" {\n  with = { command = var.nope, args = [step.zz.outputs.x] }\n}", nil},
		{"computed key skips the required check", "step \"core.exec\" \"a\" {\n  for_each = toset([\"command\"])\n  with = { (each.key) = \"x\" }\n}", nil},
		{"json with type error", `{"step": {"core.exec": {"a": {"with": {"command": "x", "args": "y"}}}}}`,
			[]string{`1:64: Incorrect type for input "args"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := loadSrc(t, tt.src)
			if tt.name != "no duplicate for bad refs" && diags.HasErrors() {
				t.Fatalf("phase 1 failed:\n%s", render(cfg, diags))
			}
			wantDiags(t, cfg.Check(testSchemas), tt.want)
		})
	}
}

func TestCheckAttributeSuggestions(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"variable object", "variable \"t\" {\n  type = object({ url = string, port = number })\n}\nstep \"core.exec\" \"a\" {\n  with = { command = var.t.prot }\n}",
			[]string{`5:27: Unsupported attribute | var.t has no attribute "prot". Did you mean "port"?`}},
		{"local object", "locals {\n  conf = { region = \"eu\" }\n}\noutput \"o\" {\n  value = local.conf.regoin\n}",
			[]string{`5:21: Unsupported attribute | local.conf has no attribute "regoin". Did you mean "region"?`}},
		{"self outputs", "step \"core.exec\" \"a\" {\n  with = { command = \"x\" }\n  rollback {\n    action = core.exec\n    with = { command = self.outputs.stdot }\n  }\n}",
			[]string{`5:36: Unsupported attribute | self.outputs has no attribute "stdot". Did you mean "stdout"?`}},
		{"each value", "variable \"m\" {\n  type = map(object({ size = number }))\n}\nstep \"core.exec\" \"a\" {\n  for_each = var.m\n  with = { command = each.value.sise }\n}",
			[]string{`6:32: Unsupported attribute | each.value has no attribute "sise". Did you mean "size"?`}},
		{"no suggestion lists attributes", "variable \"t\" {\n  type = object({ url = string })\n}\noutput \"o\" {\n  value = var.t.zzzzz\n}",
			[]string{`5:16: Unsupported attribute | var.t has no attribute "zzzzz". Its attributes are "url".`}},
		{"dynamic is not checked", "variable \"t\" {}\noutput \"o\" {\n  value = var.t.anything\n}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := loadSrc(t, tt.src)
			if diags.HasErrors() {
				t.Fatal(render(cfg, diags))
			}
			wantDiags(t, cfg.Check(testSchemas), tt.want)
		})
	}
}

package lang

import (
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const evalRunbook = `
runbook "r" {
  lock = "lock/${var.env}/${local.suffix}"
}
variable "env" {
  type = string
}
variable "pw" {
  type      = string
  sensitive = true
}
variable "dbs" {
  type = map(object({ size = number }))
}
locals {
  suffix = upper(var.env)
  auth   = { user = "admin", password = var.pw }
  first  = step.prep.outputs.stdout
}
step "core.exec" "prep" {
  with = { command = "prep-${var.env}", env = local.auth }
}
step "core.exec" "db" {
  for_each = var.dbs
  when     = each.value.size > 0
  with     = { command = "copy", args = [each.key, tostring(each.value.size), local.first, run.id] }
  rollback {
    action = core.exec
    with   = { command = "drop", args = [self.inputs.args[0], self.outputs.stdout] }
  }
}
step "core.exec" "sets" {
  for_each = toset(["b", "a"])
  with     = { command = each.value }
}
step "core.http" "check" {
  with = { url = "http://x/${step.db["big"].outputs.stdout}", token = var.pw }
}
output "sizes" {
  value = { for k, s in step.db : k => s.outputs.exit_code }
}
output "secret" {
  value     = var.pw
  sensitive = true
}
`

func evalScope(t *testing.T) (*Config, *Scope) {
	cfg := mustLoad(t, evalRunbook)
	vars, diags := cfg.ResolveVariables(VarSources{Args: []string{
		"env=prod", "pw=hunter2", `dbs={ big = { size = 10 }, empty = { size = 0 } }`,
	}})
	if diags.HasErrors() {
		t.Fatal(render(cfg, diags))
	}
	return cfg, &Scope{Config: cfg, Vars: vars, RunID: "01RUN"}
}

func TestScopeLocalsAndLock(t *testing.T) {
	_, s := evalScope(t)
	locals, diags := s.Locals()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !locals["suffix"].RawEquals(cty.StringVal("PROD")) {
		t.Errorf("suffix = %#v", locals["suffix"])
	}
	if !locals["auth"].GetAttr("password").HasMark(MarkSensitive) {
		t.Error("sensitive mark lost through locals")
	}
	if locals["first"].IsKnown() {
		t.Error("local from a step that has not run is known")
	}
	lock, diags := s.Lock()
	if diags.HasErrors() || lock != "lock/prod/PROD" {
		t.Errorf("lock = %q %v", lock, diags)
	}
}

func TestScopeExpandWhenInputs(t *testing.T) {
	cfg, s := evalScope(t)
	// Before prep ran: for_each known, inputs partly unknown.
	insts, known, diags := s.Expand(cfg.Steps["db"])
	if diags.HasErrors() || !known || len(insts) != 2 {
		t.Fatalf("expand: %v %v %v", insts, known, diags)
	}
	if insts[0].Key.AsString() != "big" || insts[1].Key.AsString() != "empty" {
		t.Errorf("keys not sorted: %v", insts)
	}
	if got := Address("db", insts[0].Key); got != `db["big"]` {
		t.Errorf("address %s", got)
	}
	run, known, _ := s.When(cfg.Steps["db"], insts[1])
	if run || !known {
		t.Errorf("when for empty: run=%v known=%v", run, known)
	}
	in, diags := s.Inputs(cfg.Steps["db"], insts[0])
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	args := in.GetAttr("args")
	if args.Index(cty.NumberIntVal(2)).IsKnown() || !args.Index(cty.NumberIntVal(3)).RawEquals(cty.StringVal("01RUN")) {
		t.Errorf("args = %#v", args)
	}

	// After prep ran.
	s.Steps = map[string]cty.Value{"prep": StepValue(cty.EmptyObjectVal, cty.ObjectVal(map[string]cty.Value{"stdout": cty.StringVal("ready")}))}
	in, _ = s.Inputs(cfg.Steps["db"], insts[0])
	want := cty.TupleVal([]cty.Value{cty.StringVal("big"), cty.StringVal("10"), cty.StringVal("ready"), cty.StringVal("01RUN")})
	if !in.GetAttr("args").RawEquals(want) {
		t.Errorf("args = %#v", in.GetAttr("args"))
	}

	// Rollback sees self.
	rb, diags := s.RollbackInputs(cfg.Steps["db"], insts[0], in, cty.ObjectVal(map[string]cty.Value{"stdout": cty.StringVal("done")}))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !rb.GetAttr("args").RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("big"), cty.StringVal("done")})) {
		t.Errorf("rollback args = %#v", rb.GetAttr("args"))
	}

	// Sets: key = value, sorted.
	insts, _, _ = s.Expand(cfg.Steps["sets"])
	if len(insts) != 2 || insts[0].Key.AsString() != "a" || !insts[0].Value.RawEquals(cty.StringVal("a")) {
		t.Errorf("set instances: %#v", insts)
	}
	// No for_each: one instance.
	insts, known, _ = s.Expand(cfg.Steps["prep"])
	if len(insts) != 1 || insts[0].Key != cty.NilVal || !known {
		t.Errorf("plain instances: %#v", insts)
	}
	if Address("prep", cty.NilVal) != "prep" {
		t.Error("plain address")
	}
}

func TestScopeSchemasConvertAndMark(t *testing.T) {
	cfg, s := evalScope(t)
	s.Schemas = testSchemas
	s.Steps = map[string]cty.Value{"db": cty.ObjectVal(map[string]cty.Value{
		"big": StepValue(cty.EmptyObjectVal, cty.ObjectVal(map[string]cty.Value{"stdout": cty.StringVal("ok")})),
	})}
	in, diags := s.Inputs(cfg.Steps["check"], Instance{Key: cty.NilVal})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !in.GetAttr("url").RawEquals(cty.StringVal("http://x/ok")) {
		t.Errorf("url = %#v", in.GetAttr("url"))
	}
	if !in.GetAttr("token").HasMark(MarkSensitive) {
		t.Error("token not marked")
	}
	if !in.GetAttr("expect_status").IsNull() {
		t.Error("optional input not null")
	}
	if strings.Contains(FormatValue(in, 0), "hunter2") {
		t.Error("secret rendered")
	}
	// Inputs sensitive by schema are marked even from plain values.
	prep, _ := s.Inputs(cfg.Steps["prep"], Instance{Key: cty.NilVal})
	if !prep.GetAttr("env").Index(cty.StringVal("password")).HasMark(MarkSensitive) {
		t.Error("sensitive var lost in env map")
	}
}

func TestScopeOutputs(t *testing.T) {
	_, s := evalScope(t)
	s.Steps = map[string]cty.Value{"db": cty.ObjectVal(map[string]cty.Value{
		"big": StepValue(cty.EmptyObjectVal, cty.ObjectVal(map[string]cty.Value{"exit_code": cty.NumberIntVal(0)})),
	})}
	outs, diags := s.Outputs()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !outs["sizes"].RawEquals(cty.ObjectVal(map[string]cty.Value{"big": cty.NumberIntVal(0)})) {
		t.Errorf("sizes = %#v", outs["sizes"])
	}
	if !outs["secret"].HasMark(MarkSensitive) {
		t.Error("secret output not marked")
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct{ forEach, want string }{
		{`["a"]`, "is a list"},
		{`null`, "is null"},
		{`"x"`, "is string"},
		{`toset([1])`, ""}, // converts to set of number? no: numbers → string set fine
	}
	for _, tt := range tests {
		cfg := mustLoadNoCheck(t, "step \"core.exec\" \"a\" {\n  for_each = "+tt.forEach+"\n  with = { command = each.key }\n}")
		s := &Scope{Config: cfg}
		_, _, diags := s.Expand(cfg.Steps["a"])
		if tt.want == "" {
			continue
		}
		if !diags.HasErrors() || !strings.Contains(diags[0].Detail, tt.want) {
			t.Errorf("for_each %s: %v", tt.forEach, diags)
		}
	}
	// Unknown for_each: not known, no error.
	cfg := mustLoadNoCheck(t, "step \"core.exec\" \"p\" {\n  with = { command = \"x\" }\n}\nstep \"core.exec\" \"a\" {\n  for_each = toset([step.p.outputs.stdout])\n  with = { command = each.key }\n}")
	_, known, diags := (&Scope{Config: cfg}).Expand(cfg.Steps["a"])
	if known || diags.HasErrors() {
		t.Errorf("unknown for_each: known=%v %v", known, diags)
	}
}

func mustLoadNoCheck(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := loadSrc(t, src)
	if diags.HasErrors() {
		t.Fatal(render(cfg, diags))
	}
	return cfg
}

func TestMarkAttrsAndUnknownStep(t *testing.T) {
	schema := testSchemas["core"]["http"]
	out := MarkAttrs(schema.Outputs, cty.ObjectVal(map[string]cty.Value{"status": cty.NumberIntVal(200), "body": cty.StringVal("b"), "secret": cty.StringVal("x")}))
	if !out.GetAttr("secret").HasMark(MarkSensitive) || out.GetAttr("status").IsMarked() {
		t.Errorf("marks: %#v", out)
	}
	u := UnknownStep(schema)
	if u.GetAttr("outputs").IsKnown() || !u.GetAttr("outputs").Type().HasAttribute("status") {
		t.Errorf("unknown step: %#v", u)
	}
}

func TestRollbackInputsWithoutOutputs(t *testing.T) {
	cfg := mustLoad(t, `step "core.exec" "a" {
  with = { command = "x" }
  rollback {
    action = core.exec
    with   = { command = "undo", args = [coalesce(self.outputs.stdout, "none")] }
  }
}`)
	s := &Scope{Config: cfg, Schemas: testSchemas}
	in := cty.ObjectVal(map[string]cty.Value{"command": cty.StringVal("x")})
	v, diags := s.RollbackInputs(cfg.Steps["a"], Instance{Key: cty.NilVal}, in, cty.NilVal)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := v.GetAttr("args").Index(cty.NumberIntVal(0)); !got.RawEquals(cty.StringVal("none")) {
		t.Errorf("args[0] = %#v", got)
	}
}

func TestInputsSchemaMismatch(t *testing.T) {
	cfg := mustLoadNoCheck(t, "step \"core.exec\" \"a\" {\n  with = { command = [\"x\"] }\n}")
	_, diags := (&Scope{Config: cfg, Schemas: testSchemas}).Inputs(cfg.Steps["a"], Instance{Key: cty.NilVal})
	wantDiags(t, diags, []string{`2:10: Invalid inputs | The inputs of core.exec do not match its schema`})
}

// Steps without `with` share the inputs their action's schema gives an
// empty object; the remembered value equals a fresh conversion, sensitive
// marks included, and steps with `with` are still converted each.
func TestInputsRemembered(t *testing.T) {
	src := `step "core.exec" "a" {
  with = { command = "x" }
}
step "core.noop" "b" {
}
step "core.noop" "c" {
}
step "core.exec" "d" {
  with = { command = "y" }
}`
	cfg := mustLoadNoCheck(t, src)
	fresh := *cfg
	fresh.inputs = nil // a Config not made by Load remembers nothing
	for _, name := range []string{"a", "b", "c", "d", "b"} {
		got, d1 := (&Scope{Config: cfg, Schemas: testSchemas}).Inputs(cfg.Steps[name], Instance{Key: cty.NilVal})
		want, d2 := (&Scope{Config: &fresh, Schemas: testSchemas}).Inputs(cfg.Steps[name], Instance{Key: cty.NilVal})
		if d1.HasErrors() || d2.HasErrors() {
			t.Fatal(d1, d2)
		}
		if !got.RawEquals(want) {
			t.Errorf("step %s: inputs %#v, a fresh conversion gives %#v", name, got, want)
		}
	}
}

// Only the locals an expression uses are evaluated, with those they use in
// turn (load refuses any other use of local than local.NAME).
func TestScopeEvaluatesNeededLocals(t *testing.T) {
	cfg := mustLoadNoCheck(t, `
variable "n" {
  default = 2
}
locals {
  a   = local.b + 1
  b   = var.n * 10
  big = [for i in range(3) : i]
  bad = tonumber("not a number")
}
step "core.exec" "one" {
  with = { command = "a=${local.a}" }
}
`)
	s := &Scope{Config: cfg, Vars: map[string]cty.Value{"n": cty.NumberIntVal(2)}}
	if got := s.neededLocals(cfg.Steps["one"].With.Variables()); !reflect.DeepEqual(got, map[string]bool{"a": true, "b": true}) {
		t.Errorf("needed by one: %v", got)
	}
	v, diags := s.Inputs(cfg.Steps["one"], Instance{Key: cty.NilVal})
	if diags.HasErrors() { // local.bad is not evaluated: no error
		t.Fatal(diags)
	}
	if got := v.GetAttr("command").AsString(); got != "a=21" {
		t.Errorf("command = %q, want a=21", got)
	}
}

// Locals are remembered only when they depend on no step: a local that
// reads a step (directly or through another local) follows the steps the
// Scope sees as they run.
func TestLocalsRememberedOnlyWithoutSteps(t *testing.T) {
	cfg := mustLoadNoCheck(t, `
variable "n" { default = 2 }
locals {
  fixed = var.n * 10
  out   = step.a.outputs.values
  both  = "${local.fixed}-${local.out}"
}
step "core.noop" "a" {}
step "core.exec" "b" {
  with = { command = local.both }
}
`)
	s := &Scope{Config: cfg, Vars: map[string]cty.Value{"n": cty.NumberIntVal(2)}}
	for _, v := range []string{"first", "second"} {
		s.Steps = map[string]cty.Value{"a": StepValue(cty.EmptyObjectVal, cty.ObjectVal(map[string]cty.Value{"values": cty.StringVal(v)}))}
		in, diags := s.Inputs(cfg.Steps["b"], Instance{Key: cty.NilVal})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got, want := in.GetAttr("command").AsString(), "20-"+v; got != want {
			t.Errorf("command = %q, want %q", got, want)
		}
	}
	// A new Scope (a new run, other variables) does not see the old values.
	s2 := &Scope{Config: cfg, Vars: map[string]cty.Value{"n": cty.NumberIntVal(3)}, Steps: s.Steps}
	in, diags := s2.Inputs(cfg.Steps["b"], Instance{Key: cty.NilVal})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := in.GetAttr("command").AsString(); got != "30-second" {
		t.Errorf("command in a new scope = %q, want 30-second", got)
	}
}

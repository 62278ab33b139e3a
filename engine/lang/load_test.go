package lang

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/zclconf/go-cty/cty"
)

const fullRunbook = `
runbook "move" {
  description = "Move things"
  lock        = "move/${var.domain}"
}

plugin "couchdb" {
  source  = "./bin/runbook-plugin-couchdb"
  version = "1.2.0"
}

variable "domain" {
  type        = string
  description = "The domain."
}

variable "dbs" {
  type    = list(string)
  default = ["cozy", "other"]
  validation {
    condition     = length(var.dbs) > 0
    error_message = "Name at least one database."
  }
}

variable "password" {
  type      = string
  sensitive = true
  default   = "hunter2"
}

variable "target" {
  type = object({
    url  = string
    port = optional(number, 5984)
  })
  default  = { url = "http://target" }
  nullable = false
}

locals {
  base = "${var.target.url}:${var.target.port}"
  cmd  = step.source.outputs.stdout
}

step "core.exec" "source" {
  with = { command = "echo", args = [var.domain] }
}

step "core.exec" "db" {
  for_each   = toset(var.dbs)
  with       = { command = "replicate", args = [each.key, local.base, local.cmd] }
  depends_on = [step.source]
  when       = each.key != "skip"
  retry {
    attempts  = 5
    backoff   = "exponential"
    delay     = "5s"
    max_delay = "1m"
    retry_on  = "any"
  }
  timeout    = "6h"
  on_failure = "continue"
  rollback {
    action = core.exec
    with   = { command = "drop", args = [each.key, self.outputs.stdout] }
  }
}

step "core.file" "marker" {
  with     = { path = "/tmp/x", content = step.db["cozy"].outputs.stdout }
  rollback = native
  always   = true
}

output "out" {
  value       = { for k, s in step.db : k => s.outputs.exit_code }
  description = "exit codes"
  sensitive   = true
}
`

func TestLoadFull(t *testing.T) {
	cfg := mustLoad(t, fullRunbook)
	if cfg.Runbook == nil || cfg.Runbook.Name != "move" || cfg.Runbook.Description != "Move things" || cfg.Runbook.Lock == nil {
		t.Errorf("runbook block: %+v", cfg.Runbook)
	}
	if diff := cmp.Diff([]string{"source", "db", "marker"}, cfg.StepOrder); diff != "" {
		t.Errorf("StepOrder (-want +got):\n%s", diff)
	}
	if p := cfg.Plugins["couchdb"]; p == nil || p.Source != "./bin/runbook-plugin-couchdb" || p.Version != "1.2.0" {
		t.Errorf("plugin block: %+v", p)
	}
	dom := cfg.Variables["domain"]
	if !dom.Required() || dom.Type != cty.String || dom.Description != "The domain." || !dom.Nullable {
		t.Errorf("variable domain: %+v", dom)
	}
	if !cfg.Variables["password"].Sensitive {
		t.Error("password not sensitive")
	}
	tgt := cfg.Variables["target"]
	if tgt.Nullable {
		t.Error("target nullable")
	}
	if got := tgt.Default.GetAttr("port"); !got.RawEquals(cty.NumberIntVal(5984)) {
		t.Errorf("optional default not applied: %#v", got)
	}
	if len(cfg.Variables["dbs"].Validations) != 1 {
		t.Error("validation not decoded")
	}
	db := cfg.Steps["db"]
	if db.Plugin != "core" || db.Action != "exec" || db.ForEach == nil || db.When == nil || db.With == nil {
		t.Errorf("step db: %+v", db)
	}
	wantRetry := &Retry{Attempts: 5, Delay: 5 * time.Second, MaxDelay: time.Minute, Backoff: "exponential", AnyError: true}
	if diff := cmp.Diff(wantRetry, db.Retry); diff != "" {
		t.Errorf("retry (-want +got):\n%s", diff)
	}
	if db.Timeout != 6*time.Hour || db.OnFailure != OnFailureContinue || db.Always {
		t.Errorf("db engine args: timeout %v on_failure %q always %v", db.Timeout, db.OnFailure, db.Always)
	}
	if db.Rollback == nil || db.Rollback.Native || db.Rollback.Plugin != "core" || db.Rollback.Action != "exec" || db.Rollback.With == nil {
		t.Errorf("db rollback: %+v", db.Rollback)
	}
	if diff := cmp.Diff([]string{"source"}, db.DependsOn); diff != "" {
		t.Errorf("DependsOn: %s", diff)
	}
	// source through depends_on and through local.cmd.
	if diff := cmp.Diff([]string{"source"}, db.Deps); diff != "" {
		t.Errorf("db Deps: %s", diff)
	}
	m := cfg.Steps["marker"]
	if m.Rollback == nil || !m.Rollback.Native || !m.Always || m.OnFailure != OnFailureRollback || m.Retry != nil {
		t.Errorf("marker: %+v rollback %+v", m, m.Rollback)
	}
	if diff := cmp.Diff([]string{"db"}, m.Deps); diff != "" {
		t.Errorf("marker Deps: %s", diff)
	}
	o := cfg.Outputs["out"]
	if o == nil || !o.Sensitive || o.Description != "exit codes" {
		t.Errorf("output: %+v", o)
	}
	if len(cfg.Sources) != 1 || len(cfg.Files) != 1 {
		t.Errorf("files/sources not kept")
	}
}

// The JSON syntax means the same as the native syntax.
func TestLoadJSONSyntax(t *testing.T) {
	src := `{
  "runbook": {"j": {"description": "json", "lock": "k/${var.name}"}},
  "variable": {"name": {"type": "string", "default": "x"}},
  "locals": {"greeting": "hi ${var.name}"},
  "step": {
    "core.exec": {
      "a": {"with": {"command": "echo", "args": ["${local.greeting}"]}},
      "b": {
        "with": {"command": "${step.a.outputs.stdout}"},
        "depends_on": ["step.a"],
        "retry": {"attempts": 3, "delay": "1s"},
        "timeout": "1m",
        "rollback": {"action": "core.noop", "with": {"values": "${self.inputs.command}"}}
      }
    },
    "core.file": {
      "c": {"with": {"path": "/x", "content": "${step.b.outputs.stdout}"}, "rollback": "native"}
    }
  },
  "output": {"o": {"value": "${step.c.outputs.sha256}"}}
}`
	cfg := mustLoad(t, src)
	if diff := cmp.Diff([]string{"a"}, cfg.Steps["b"].Deps); diff != "" {
		t.Errorf("b deps: %s", diff)
	}
	if diff := cmp.Diff([]string{"b"}, cfg.Steps["c"].Deps); diff != "" {
		t.Errorf("c deps: %s", diff)
	}
	b := cfg.Steps["b"]
	if b.Retry == nil || b.Retry.Attempts != 3 || b.Timeout != time.Minute || b.Rollback == nil || b.Rollback.Action != "noop" {
		t.Errorf("b: %+v", b)
	}
	if r := cfg.Steps["c"].Rollback; r == nil || !r.Native {
		t.Errorf("c rollback: %+v", r)
	}
	s := &Scope{Config: cfg, Vars: map[string]cty.Value{"name": cty.StringVal("bob")}}
	in, diags := s.Inputs(cfg.Steps["a"], Instance{Key: cty.NilVal})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := in.GetAttr("args").Index(cty.NumberIntVal(0)); !got.RawEquals(cty.StringVal("hi bob")) {
		t.Errorf("args[0] = %#v", got)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.hcl", `step "core.exec" "a" { with = { command = "x" } }`)
	write("b.runbook.json", `{"step": {"core.exec": {"b": {"with": {"command": "${step.a.outputs.stdout}"}}}}}`)
	write(".runbook.lock.hcl", `this is not a runbook`)
	write("notes.json", `not loaded`)
	write("prod.vars.hcl", `region = "eu"`)
	write("a.runbooktest.hcl", `run "x" {}`)
	write("data.txt", "hello")
	cfg, diags := Load(dir)
	if diags.HasErrors() {
		t.Fatal(render(cfg, diags))
	}
	if len(cfg.Steps) != 2 || cfg.Steps["b"].Deps[0] != "a" {
		t.Fatalf("steps: %v", cfg.StepOrder)
	}
	if cfg.BaseDir != dir {
		t.Errorf("BaseDir = %q", cfg.BaseDir)
	}
	// file() resolves relative to the runbook directory.
	cfg2, diags := Load(filepath.Join(dir, "a.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	fn := Functions(cfg2.BaseDir)["file"]
	v, err := fn.Call([]cty.Value{cty.StringVal("data.txt")})
	if err != nil || v.AsString() != "hello" {
		t.Errorf("file(): %v %v", v, err)
	}
	if _, diags := Load(filepath.Join(dir, "missing.hcl")); !diags.HasErrors() || diags[0].Summary != "Cannot read runbook" {
		t.Errorf("missing file: %v", diags)
	}
	empty := t.TempDir()
	if _, diags := Load(empty); !diags.HasErrors() || diags[0].Summary != "No runbook files" {
		t.Errorf("empty dir: %v", diags)
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustLoad(t, `step "core.exec" "a" { with = { command = "x" } }`)
	a := cfg.Steps["a"]
	if a.OnFailure != OnFailureRollback || a.Retry != nil || a.Timeout != 0 || a.Always || a.Rollback != nil || a.ForEach != nil || a.When != nil {
		t.Errorf("defaults: %+v", a)
	}
	cfg = mustLoad(t, `step "core.exec" "a" {
  with = { command = "x" }
  retry { attempts = 2 }
}`)
	want := &Retry{Attempts: 2, Delay: time.Second, Backoff: "fixed"}
	if diff := cmp.Diff(want, cfg.Steps["a"].Retry); diff != "" {
		t.Errorf("retry defaults: %s", diff)
	}
}

func TestDepsThroughLocalsAndRollback(t *testing.T) {
	cfg := mustLoad(t, `
locals {
  a = step.one.outputs.stdout
  b = local.a
  c = "${local.b}-${step.two.outputs.stdout}"
}
step "core.exec" "one" { with = { command = "x" } }
step "core.exec" "two" { with = { command = "x" } }
step "core.exec" "three" {
  with = { command = local.c }
}
step "core.exec" "four" {
  with = { command = "x" }
  rollback {
    action = core.exec
    with   = { command = step.three.outputs.stdout }
  }
}
step "core.exec" "five" {
  with = { command = "x" }
  when = step.one.outputs.exit_code == 0
}
`)
	for name, want := range map[string][]string{
		"one": nil, "two": nil, "three": {"one", "two"}, "four": {"three"}, "five": {"one"},
	} {
		if diff := cmp.Diff(want, cfg.Steps[name].Deps, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s deps (-want +got):\n%s", name, diff)
		}
	}
	levels, err := cfg.Graph().Levels()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"one", "two"}, {"five", "three"}, {"four"}}, levels); diff != "" {
		t.Errorf("levels: %s", diff)
	}
	rb := cfg.RollbackGraph()
	if diff := cmp.Diff([]string{"four"}, rb.Nodes()); diff != "" {
		t.Errorf("rollback nodes: %s", diff)
	}
}

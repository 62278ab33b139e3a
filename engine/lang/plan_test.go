package lang

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// planProvider answers Plan for the fake schemas; it echoes its inputs so
// the test can see that secrets are masked.
type planProvider struct{ fail bool }

func (p planProvider) Schema(context.Context) (*sdk.PluginSchema, error) {
	return nil, errors.New("unused")
}
func (p planProvider) Validate(context.Context, string, cty.Value) (sdk.Diagnostics, error) {
	return nil, nil
}
func (p planProvider) Apply(context.Context, string, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return nil, errors.New("plan must not apply")
}
func (p planProvider) Undo(context.Context, string, *sdk.UndoRequest, sdk.Events) error {
	return errors.New("plan must not undo")
}
func (p planProvider) Plan(_ context.Context, action string, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if p.fail {
		return nil, fmt.Errorf("backend down while planning %s", FormatValue(req.Inputs, 0))
	}
	if req.Inputs.IsMarked() {
		return nil, errors.New("marked inputs sent to plugin")
	}
	v := req.Inputs.GetAttr("values")
	return &sdk.PlanResult{
		Summary:  "would echo " + FormatValue(v, 0),
		Counts:   map[string]int64{"echo": 1, "change": 0},
		Warnings: []string{"this is only a test"},
		Details:  []string{"line one"},
	}, nil
}

const planRunbook = `
runbook "plan-demo" {
  description = "Shows every part of a plan"
  lock        = "demo/${var.env}"
}
variable "env" {
  type = string
}
variable "token" {
  type      = string
  sensitive = true
}
variable "dbs" {
  type    = set(string)
  default = ["a", "b"]
}
step "core.http" "health" {
  with = { url = "https://${var.env}.example.org/health", token = var.token }
}
step "core.noop" "prepare" {
  with = { values = { env = var.env, secret = var.token, status = step.health.outputs.status } }
  rollback = native
  retry {
    attempts  = 3
    backoff   = "exponential"
    delay     = "2s"
    max_delay = "30s"
  }
  timeout = "10m"
}
step "core.exec" "copy" {
  for_each = var.dbs
  when     = each.key != "b"
  with     = { command = "copy", args = [each.key, step.prepare.inputs.values.env] }
  rollback {
    action = core.exec
    with   = { command = "drop", args = [each.key] }
  }
}
step "core.exec" "later" {
  for_each = toset([step.health.outputs.body])
  with     = { command = each.key }
  on_failure = "continue"
}
step "core.file" "switch" {
  with       = { path = "/etc/target", content = "${var.env}\n" }
  depends_on = [step.copy]
}
step "core.exec" "cleanup" {
  with   = { command = "cleanup", env = { TOKEN = var.token } }
  always = true
  depends_on = [step.switch]
}
output "status" {
  value = step.health.outputs.status
}
output "env" {
  value = var.env
}
`

func TestPlanGolden(t *testing.T) {
	cfg := mustLoad(t, planRunbook)
	vars, diags := cfg.ResolveVariables(VarSources{Args: []string{"env=prod", "token=tok-123"}})
	if diags.HasErrors() {
		t.Fatal(render(cfg, diags))
	}
	for _, tc := range []struct {
		name string
		prov planProvider
	}{{"plan.golden", planProvider{}}, {"plan_error.golden", planProvider{fail: true}}} {
		p, diags := cfg.Plan(context.Background(), PlanOptions{
			Vars:    vars,
			Schemas: testSchemas,
			Provider: func(context.Context, string) (sdk.Provider, error) {
				return tc.prov, nil
			},
		})
		if diags.HasErrors() {
			t.Fatal(render(cfg, diags))
		}
		var b strings.Builder
		if err := p.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "tok-123") {
			t.Errorf("secret in plan:\n%s", b.String())
		}
		golden(t, tc.name, b.String())
		b.Reset()
		if err := p.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "tok-123") {
			t.Errorf("secret in JSON plan:\n%s", b.String())
		}
		golden(t, strings.TrimSuffix(tc.name, ".golden")+".json", b.String())
		if p.PointOfNoReturn != "later" {
			t.Errorf("point of no return = %q", p.PointOfNoReturn)
		}
	}
}

func TestPlanReversibility(t *testing.T) {
	cfg := mustLoad(t, `
step "core.http" "ro" {
  with = { url = "x" }
}
step "core.file" "native" {
  with     = { path = "p", content = "c" }
  rollback = native
}
step "core.exec" "block" {
  with = { command = "x" }
  rollback {
    action = core.exec
    with   = { command = "y" }
  }
}
step "core.exec" "irr" {
  with = { command = "x" }
}
`)
	p, diags := cfg.Plan(context.Background(), PlanOptions{Schemas: testSchemas})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]string{}
	for _, s := range p.Steps {
		got[s.Name] = string(s.Reversibility) + "/" + s.Undo
	}
	want := map[string]string{"ro": "read-only/", "native": "reversible/native undo", "block": "reversible/rollback: core.exec", "irr": "irreversible/"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %s want %s", k, got[k], v)
		}
	}
	if p.PointOfNoReturn != "irr" {
		t.Errorf("point of no return %q", p.PointOfNoReturn)
	}
	// A check marked read_only = true is not the point of no return; one
	// whose flag is false, or not known before the run, still is.
	for _, tc := range []struct{ flag, want, ponr string }{
		{"true", "read-only/", "irr"},
		{"false", "irreversible/", "check"},
		{"var.flag", "irreversible/", "check"},
	} {
		src := "variable \"flag\" {\n  type    = bool\n  default = true\n}\n" +
			"step \"core.exec\" \"check\" {\n  with = { command = \"test\", read_only = " + tc.flag + " }\n}\n" +
			"step \"core.exec\" \"irr\" {\n  with       = { command = \"x\" }\n  depends_on = [step.check]\n}\n"
		c := mustLoad(t, src)
		// var.flag stands for a flag that is not known before the run.
		vars := map[string]cty.Value{"flag": cty.UnknownVal(cty.Bool)}
		pl, d := c.Plan(context.Background(), PlanOptions{Schemas: testSchemas, Vars: vars})
		if d.HasErrors() {
			t.Fatal(d)
		}
		if got := string(pl.Steps[0].Reversibility) + "/" + pl.Steps[0].Undo; got != tc.want || pl.PointOfNoReturn != tc.ponr {
			t.Errorf("read_only = %s: %s, point of no return %q; want %s, %q", tc.flag, got, pl.PointOfNoReturn, tc.want, tc.ponr)
		}
	}
	// Without schemas nothing is known to be read-only.
	p, _ = cfg.Plan(context.Background(), PlanOptions{})
	if p.PointOfNoReturn != "irr" || p.Steps[len(p.Steps)-1].Reversibility != Irreversible {
		t.Errorf("without schemas: %q", p.PointOfNoReturn)
	}
}

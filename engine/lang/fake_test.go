package lang

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// fakeSchemas is an in-memory SchemaSource for tests.
type fakeSchemas map[string]map[string]sdk.ActionSchema

func (f fakeSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	p, ok := f[plugin]
	if !ok {
		return sdk.ActionSchema{}, false, fmt.Errorf("no plugin named %q", plugin)
	}
	s, ok := p[action]
	return s, ok, nil
}

func (f fakeSchemas) ActionNames(plugin string) ([]string, error) {
	p, ok := f[plugin]
	if !ok {
		return nil, fmt.Errorf("no plugin named %q", plugin)
	}
	var out []string
	for n := range p {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

var testSchemas = fakeSchemas{
	"core": {
		"exec": {Name: "exec",
			Inputs: []sdk.Attribute{
				{Name: "command", Type: cty.String, Required: true},
				{Name: "args", Type: cty.List(cty.String)},
				{Name: "env", Type: cty.Map(cty.String)},
				{Name: "timeout", Type: cty.String},
			},
			Outputs: []sdk.Attribute{{Name: "stdout", Type: cty.String}, {Name: "stderr", Type: cty.String}, {Name: "exit_code", Type: cty.Number}},
		},
		"noop": {Name: "noop", Inputs: []sdk.Attribute{{Name: "values", Type: cty.DynamicPseudoType}},
			Outputs:      []sdk.Attribute{{Name: "values", Type: cty.DynamicPseudoType}},
			Capabilities: sdk.Capabilities{ReadOnly: true, SupportsPlan: true}},
		"file": {Name: "file",
			Inputs:       []sdk.Attribute{{Name: "path", Type: cty.String, Required: true}, {Name: "content", Type: cty.String, Required: true}, {Name: "mode", Type: cty.String}},
			Outputs:      []sdk.Attribute{{Name: "path", Type: cty.String}, {Name: "existed", Type: cty.Bool}},
			Capabilities: sdk.Capabilities{NativeUndo: true}},
		"http": {Name: "http",
			Inputs:       []sdk.Attribute{{Name: "url", Type: cty.String, Required: true}, {Name: "token", Type: cty.String, Sensitive: true}, {Name: "expect_status", Type: cty.List(cty.Number)}},
			Outputs:      []sdk.Attribute{{Name: "status", Type: cty.Number}, {Name: "body", Type: cty.String}, {Name: "secret", Type: cty.String, Sensitive: true}},
			Capabilities: sdk.Capabilities{ReadOnly: true}},
	},
}

func loadT(t *testing.T, src string) (*Config, hcl.Diagnostics) {
	t.Helper()
	name := "main.hcl"
	if strings.HasPrefix(strings.TrimSpace(src), "{") {
		name = "main.runbook.json"
	}
	return LoadSources(map[string][]byte{name: []byte(src)})
}

func TestSmoke(t *testing.T) {
	cfg, diags := loadT(t, `
variable "dbs" {
  type = list(string)
  default = ["a"]
}
step "core.exec" "one" {
  with = { command = "echo", args = var.dbs }
}
step "core.exec" "two" {
  with = { command = step.one.outputs.stdout, args = [step.one.outputs.stdot] }
}
`)
	diags = append(diags, cfg.Check(testSchemas)...)
	var b strings.Builder
	cfg.WriteDiagnostics(&b, diags, 100, false)
	t.Log(b.String())
}

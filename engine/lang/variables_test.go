package lang

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

const varsRunbook = `
variable "name" {
  type = string
}
variable "count" {
  type    = number
  default = 1
}
variable "tags" {
  type    = list(string)
  default = []
}
variable "conf" {
  type = object({
    url     = string
    retries = optional(number, 3)
    labels  = optional(map(string), {})
  })
  default = { url = "http://x" }
}
variable "token" {
  type      = string
  sensitive = true
  default   = "s3cret"
}
variable "any" {
  default = "d"
}
variable "port" {
  type    = number
  default = 80
  validation {
    condition     = var.port > 0 && var.port < 65536
    error_message = "The port must be between 1 and 65535."
  }
}
variable "flag" {
  type    = bool
  default = false
}
variable "pin" {
  type      = number
  sensitive = true
  default   = 1
}
`

func TestResolveVariables(t *testing.T) {
	dir := t.TempDir()
	hclFile := filepath.Join(dir, "v.hcl")
	os.WriteFile(hclFile, []byte("name = \"from-file\"\ncount = 7\n"), 0o644)
	jsonFile := filepath.Join(dir, "v.json")
	os.WriteFile(jsonFile, []byte(`{"name": "from-json", "tags": ["a", "b"]}`), 0o644)

	tests := []struct {
		name  string
		src   VarSources
		check map[string]cty.Value
	}{
		{"arg", VarSources{Args: []string{"name=bob"}}, map[string]cty.Value{
			"name": cty.StringVal("bob"), "count": cty.NumberIntVal(1), "tags": cty.ListValEmpty(cty.String),
			"any": cty.StringVal("d"), "port": cty.NumberIntVal(80),
			"conf": cty.ObjectVal(map[string]cty.Value{"url": cty.StringVal("http://x"), "retries": cty.NumberIntVal(3), "labels": cty.MapValEmpty(cty.String)}),
		}},
		{"string keeps raw text", VarSources{Args: []string{`name=["not", "a list"]`}}, map[string]cty.Value{"name": cty.StringVal(`["not", "a list"]`)}},
		{"non-string args are expressions", VarSources{Args: []string{"name=x", "count=42", `tags=["a","b"]`, `conf={ url = "u", retries = 1 }`}}, map[string]cty.Value{
			"count": cty.NumberIntVal(42), "tags": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
			"conf": cty.ObjectVal(map[string]cty.Value{"url": cty.StringVal("u"), "retries": cty.NumberIntVal(1), "labels": cty.MapValEmpty(cty.String)}),
		}},
		{"untyped expression", VarSources{Args: []string{"name=x", `any={ a = 1 }`}}, map[string]cty.Value{"any": cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1)})}},
		{"env", VarSources{Env: []string{"PATH=/bin", "RUNBOOK_VAR_name=envname", "RUNBOOK_VAR_count=3", "RUNBOOK_VAR_other=ignored"}}, map[string]cty.Value{
			"name": cty.StringVal("envname"), "count": cty.NumberIntVal(3)}},
		{"hcl file", VarSources{Files: []string{hclFile}}, map[string]cty.Value{"name": cty.StringVal("from-file"), "count": cty.NumberIntVal(7)}},
		{"later wins: env < files < args", VarSources{
			Env:   []string{"RUNBOOK_VAR_name=env", "RUNBOOK_VAR_count=2"},
			Files: []string{hclFile, jsonFile},
			Args:  []string{"count=9"},
		}, map[string]cty.Value{"name": cty.StringVal("from-json"), "count": cty.NumberIntVal(9), "tags": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")})}},
		{"prompt for missing", VarSources{Prompt: func(v *Variable) (string, error) { return "typed-" + v.Name, nil }}, map[string]cty.Value{"name": cty.StringVal("typed-name")}},
	}
	cfg := mustLoad(t, varsRunbook)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, diags := cfg.ResolveVariables(tt.src)
			if diags.HasErrors() {
				t.Fatal(render(cfg, diags))
			}
			for k, want := range tt.check {
				if got := vals[k]; !got.RawEquals(want) {
					t.Errorf("%s = %#v, want %#v", k, got, want)
				}
			}
			if len(vals) != len(cfg.Variables) {
				t.Errorf("got %d values, want %d", len(vals), len(cfg.Variables))
			}
			if !vals["token"].HasMark(MarkSensitive) || vals["name"].IsMarked() {
				t.Error("sensitive marks wrong")
			}
		})
	}
}

// TestInvalidValueIsNotAlsoMissing: a required variable given a bad value
// gets one diagnostic saying what is wrong with the value, not a second
// one saying it was not set.
func TestInvalidValueIsNotAlsoMissing(t *testing.T) {
	cfg := mustLoad(t, "variable \"port\" {\n  type = number\n}\n")
	_, diags := cfg.ResolveVariables(VarSources{Args: []string{"port=abc"}})
	wantDiags(t, diags, []string{`-: Invalid value for variable | The value "abc" from -var port for variable "port" is not a number.`})
	_, diags = cfg.ResolveVariables(VarSources{Env: []string{"RUNBOOK_VAR_port=abc"}})
	wantDiags(t, diags, []string{`-: Invalid value for variable | The value "abc" from environment variable RUNBOOK_VAR_port for variable "port" is not a number.`})
}

func TestResolveVariablesErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("nmae = \"x\"\ncount = \"many\"\n"), 0o644)
	tests := []struct {
		name string
		src  VarSources
		want []string
	}{
		{"missing", VarSources{}, []string{"2:1: No value for required variable \"name\" | These variables have no default and were not set:\n  name (string), declared at main.hcl:2:1\n\nSet each with -var name=VALUE, in a -var-file, or with the environment variable RUNBOOK_VAR_name=VALUE."}},
		{"undeclared arg", VarSources{Args: []string{"name=x", "nmae=y"}}, []string{`-: Value for undeclared variable | -var nmae: this runbook declares no variable "nmae". Did you mean "name"?`}},
		{"malformed arg", VarSources{Args: []string{"name=x", "count"}}, []string{`-: Invalid -var option | "count" must be NAME=VALUE`}},
		{"bad number", VarSources{Args: []string{"name=x", "count=many"}}, []string{`-: Invalid value for variable | The value "many" from -var count for variable "count" is not a number.`}},
		{"bad bool", VarSources{Args: []string{"name=x", "flag=yes"}}, []string{`-: Invalid value for variable | The value "yes" from -var flag for variable "flag" is not a bool (true or false).`}},
		{"bad sensitive number is not quoted", VarSources{Args: []string{"name=x", "pin=abc"}}, []string{`-: Invalid value for variable | The value from -var pin for variable "pin" is not a number.`}},
		{"an expression still says what HCL says", VarSources{Args: []string{"name=x", "count=x + 1"}}, []string{`-: Invalid value for variable | The value from -var count for variable "count" must be a constant`}},
		{"bad type", VarSources{Args: []string{"name=x", `tags={ a = 1 }`}}, []string{`-: Invalid value for variable | The value from -var tags for variable "tags" is not list(string): list of string required`}},
		{"bad object", VarSources{Args: []string{"name=x", `conf={ retries = 2 }`}}, []string{`-: Invalid value for variable | attribute "url" is required`}},
		{"syntax", VarSources{Args: []string{"name=x", `tags=["a"`}}, []string{`-: Invalid value for variable | must be an HCL expression of type list(string)`}},
		{"file errors", VarSources{Files: []string{bad}}, []string{
			`1:1: Value for undeclared variable | This runbook declares no variable "nmae". Did you mean "name"?`,
			`2:9: Invalid value for variable | The value from file ` + bad + ` for variable "count" is not number`,
			`2:1: No value for required variable "name"`,
		}},
		{"missing file", VarSources{Args: []string{"name=x"}, Files: []string{filepath.Join(dir, "nope.hcl")}}, []string{`-: Cannot read variables file`}},
		{"validation", VarSources{Args: []string{"name=x", "port=70000"}}, []string{`33:21: Invalid value for variable "port" | The port must be between 1 and 65535.`}},
		{"prompt error", VarSources{Prompt: func(*Variable) (string, error) { return "", errors.New("EOF") }}, []string{`2:1: No value for variable | Reading variable "name": EOF`}},
	}
	cfg := mustLoad(t, varsRunbook)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := cfg.ResolveVariables(tt.src)
			wantDiags(t, diags, tt.want)
			out := render(cfg, diags)
			if strings.Contains(out, "s3cret") {
				t.Errorf("secret leaked:\n%s", out)
			}
		})
	}
}

func TestMissingVariablesNamedTogether(t *testing.T) {
	cfg := mustLoad(t, "variable \"a\" {\n  description = \"First.\"\n}\nvariable \"b\" {\n  type = number\n}\nvariable \"c\" {\n  default = 1\n}")
	_, diags := cfg.ResolveVariables(VarSources{})
	wantDiags(t, diags, []string{"1:1: No value for required variables \"a\", \"b\" | a (any), declared at main.hcl:1:1: First.\n  b (number), declared at main.hcl:4:1"})
}

func TestSensitiveValueNotInErrors(t *testing.T) {
	cfg := mustLoad(t, `variable "pw" {
  type      = number
  sensitive = true
}`)
	_, diags := cfg.ResolveVariables(VarSources{Args: []string{"pw=topsecret"}})
	if !diags.HasErrors() {
		t.Fatal("no error")
	}
	if out := render(cfg, diags); strings.Contains(out, "topsecret") {
		t.Errorf("secret in message:\n%s", out)
	}
}

func TestValidationConditionNotBool(t *testing.T) {
	cfg := mustLoad(t, "variable \"v\" {\n  default = 1\n  validation {\n    condition     = \"maybe\"\n    error_message = \"no\"\n  }\n}")
	_, diags := cfg.ResolveVariables(VarSources{})
	wantDiags(t, diags, []string{`4:21: Invalid validation condition | The condition must be true or false.`})
}

package lang

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeSchemas is an in-memory SchemaSource for tests.
type fakeSchemas map[string]map[string]sdk.ActionSchema

func (f fakeSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	if plugin == "broken" { // a plugin that exists but cannot start
		return sdk.ActionSchema{}, false, &sdk.Error{Kind: sdk.KindInternal, Err: fmt.Errorf("plugin broken could not be started: exit status 3")}
	}
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
				{Name: "read_only", Type: cty.Bool},
			},
			Outputs: []sdk.Attribute{{Name: "stdout", Type: cty.String}, {Name: "stderr", Type: cty.String}, {Name: "exit_code", Type: cty.Number}},
		},
		"noop": {Name: "noop", Inputs: []sdk.Attribute{{Name: "values", Type: cty.DynamicPseudoType}},
			Outputs:      []sdk.Attribute{{Name: "values", Type: cty.DynamicPseudoType}},
			Capabilities: sdk.Capabilities{NativeUndo: true, SupportsPlan: true}},
		"file": {Name: "file",
			Inputs:       []sdk.Attribute{{Name: "path", Type: cty.String, Required: true}, {Name: "content", Type: cty.String, Required: true}, {Name: "mode", Type: cty.String}},
			Outputs:      []sdk.Attribute{{Name: "sha256", Type: cty.String}, {Name: "changed", Type: cty.Bool}},
			Capabilities: sdk.Capabilities{NativeUndo: true}},
		"http": {Name: "http",
			Inputs:       []sdk.Attribute{{Name: "url", Type: cty.String, Required: true}, {Name: "token", Type: cty.String, Sensitive: true}, {Name: "expect_status", Type: cty.List(cty.Number)}},
			Outputs:      []sdk.Attribute{{Name: "status", Type: cty.Number}, {Name: "body", Type: cty.String}, {Name: "secret", Type: cty.String, Sensitive: true}},
			Capabilities: sdk.Capabilities{ReadOnly: true}},
		"assert": {Name: "assert",
			Inputs:       []sdk.Attribute{{Name: "condition", Type: cty.Bool, Required: true}, {Name: "message", Type: cty.String}},
			Capabilities: sdk.Capabilities{ReadOnly: true}},
	},
}

func loadSrc(t *testing.T, src string) (*Config, hcl.Diagnostics) {
	t.Helper()
	name := "main.hcl"
	if strings.HasPrefix(strings.TrimSpace(src), "{") {
		name = "main.runbook.json"
	}
	return LoadSources(map[string][]byte{name: []byte(src)})
}

// mustLoad loads src and fails on any diagnostic of phase 1 or 2.
func mustLoad(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := loadSrc(t, src)
	diags = append(diags, cfg.Check(testSchemas)...)
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", render(cfg, diags))
	}
	return cfg
}

func render(cfg *Config, diags hcl.Diagnostics) string {
	var b strings.Builder
	if err := cfg.WriteDiagnostics(&b, diags, 0, false); err != nil {
		return err.Error()
	}
	return b.String()
}

// brief renders each diagnostic as "LINE:COL: Summary | Detail".
func brief(diags hcl.Diagnostics) []string {
	out := make([]string, 0, len(diags))
	for _, d := range diags {
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
		}
		out = append(out, fmt.Sprintf("%s: %s | %s", pos, d.Summary, d.Detail))
	}
	return out
}

// wantDiags checks that diags match want one to one: each want entry is
// "LINE:COL: substring" and must be contained in the brief form.
func wantDiags(t *testing.T, diags hcl.Diagnostics, want []string) {
	t.Helper()
	got := brief(diags)
	if len(got) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		pos, sub, _ := strings.Cut(want[i], ": ")
		gpos, grest, _ := strings.Cut(got[i], ": ")
		wsum, wdet, _ := strings.Cut(sub, " | ")
		gsum, gdet, _ := strings.Cut(grest, " | ")
		if pos != gpos || !strings.Contains(gsum, wsum) || !strings.Contains(gdet, wdet) {
			t.Errorf("diagnostic %d:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

package lang

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func evalExpr(t *testing.T, dir, src string) (cty.Value, hcl.Diagnostics) {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "expr.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", src, diags)
	}
	return expr.Value(&hcl.EvalContext{Functions: Functions(dir)})
}

func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "greet.tpl"), []byte("Hi ${name}, ${upper(place)}!%{ for x in items } ${x}%{ endfor }"), 0o644)
	t.Setenv("RUNBOOK_TEST_ENV", "from-env")
	tests := []struct {
		expr string
		want cty.Value
	}{
		{`upper("a")`, cty.StringVal("A")},
		{`index(["a", "b", "c"], "b")`, cty.NumberIntVal(1)},
		{`index([1, 2, 2], 2)`, cty.NumberIntVal(1)},
		{`index(tolist(["x", "y"]), "y")`, cty.NumberIntVal(1)},
		{`length("héllo")`, cty.NumberIntVal(5)},
		{`length([1, 2])`, cty.NumberIntVal(2)},
		{`length({ a = 1 })`, cty.NumberIntVal(1)},
		{`join(",", ["a", "b"])`, cty.StringVal("a,b")},
		{`merge({ a = 1 }, { b = 2 })`, cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1), "b": cty.NumberIntVal(2)})},
		{`jsonencode({ a = [1, "x"] })`, cty.StringVal(`{"a":[1,"x"]}`)},
		{`jsondecode("{\"a\": true}").a`, cty.True},
		{`yamldecode("a: 1\nb: [x]\n").b[0]`, cty.StringVal("x")},
		{`yamlencode({ a = "b" })`, cty.StringVal("\"a\": \"b\"\n")},
		{`base64encode("hi")`, cty.StringVal("aGk=")},
		{`base64decode("aGk=")`, cty.StringVal("hi")},
		{`urlencode("a b&c")`, cty.StringVal("a+b%26c")},
		{`sha256("abc")`, cty.StringVal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")},
		{`sha1("abc")`, cty.StringVal("a9993e364706816aba3e25717850c26c9cd0d89d")},
		{`md5("abc")`, cty.StringVal("900150983cd24fb0d6963f7d28e17f72")},
		{`file("hello.txt")`, cty.StringVal("hello\n")},
		{`fileexists("hello.txt")`, cty.True},
		{`fileexists("nope.txt")`, cty.False},
		{`templatefile("greet.tpl", { name = "Ann", place = "paris", items = ["a", "b"] })`, cty.StringVal("Hi Ann, PARIS! a b")},
		{`env("RUNBOOK_TEST_ENV")`, cty.StringVal("from-env")},
		{`env("RUNBOOK_TEST_UNSET_XYZ")`, cty.StringVal("")},
		{`env("RUNBOOK_TEST_UNSET_XYZ", "dflt")`, cty.StringVal("dflt")},
		{`try(jsondecode("{"), "fallback")`, cty.StringVal("fallback")},
		{`can(jsondecode("{"))`, cty.False},
		{`can(jsondecode("{}"))`, cty.True},
		{`startswith("runbook", "run")`, cty.True},
		{`endswith("runbook", "run")`, cty.False},
		{`strcontains("runbook", "nbo")`, cty.True},
		{`basename("/a/b.txt")`, cty.StringVal("b.txt")},
		{`dirname("/a/b.txt")`, cty.StringVal("/a")},
		{`tostring(12)`, cty.StringVal("12")},
		{`formatdate("YYYY", "2026-01-02T03:04:05Z")`, cty.StringVal("2026")},
		{`regex_replace("a-b", "-", "_")`, cty.StringVal("a_b")},
		{`length(toset(["a", "a", "b"]))`, cty.NumberIntVal(2)},
	}
	for _, tt := range tests {
		got, diags := evalExpr(t, dir, tt.expr)
		if diags.HasErrors() {
			t.Errorf("%s: %v", tt.expr, diags)
			continue
		}
		if !got.RawEquals(tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.expr, got, tt.want)
		}
	}

	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	u1, _ := evalExpr(t, dir, `uuid()`)
	u2, _ := evalExpr(t, dir, `uuid()`)
	if !uuidRe.MatchString(u1.AsString()) || u1.RawEquals(u2) {
		t.Errorf("uuid: %s %s", u1.AsString(), u2.AsString())
	}
	ts, _ := evalExpr(t, dir, `timestamp()`)
	if tm, err := time.Parse(time.RFC3339, ts.AsString()); err != nil || time.Since(tm) > time.Minute {
		t.Errorf("timestamp %s: %v", ts.AsString(), err)
	}
	for _, bad := range []string{`file("missing.txt")`, `templatefile("missing.tpl", {})`, `templatefile("greet.tpl", "x")`, `length(1)`, `env("A", "b", "c")`, `index(["a"], "z")`, `index({ a = 1 }, "a")`} {
		if _, diags := evalExpr(t, dir, bad); !diags.HasErrors() {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestFunctionNamesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/language.md")
	if err != nil {
		t.Skip("docs/language.md not present")
	}
	for _, name := range FunctionNames() {
		if !strings.Contains(string(doc), "`"+name+"(") {
			t.Errorf("function %s is not documented in docs/language.md", name)
		}
	}
}

// The complete examples in docs/language.md load and check cleanly.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/language.md")
	if err != nil {
		t.Skip("docs/language.md not present")
	}
	hclBlocks := regexp.MustCompile("(?s)```hcl\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	jsonBlocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(hclBlocks) == 0 || len(jsonBlocks) == 0 {
		t.Fatal("no examples found")
	}
	for name, src := range map[string]string{
		"first.hcl":         hclBlocks[0][1],
		"last.runbook.json": jsonBlocks[len(jsonBlocks)-1][1],
	} {
		cfg, diags := LoadSources(map[string][]byte{name: []byte(src)})
		diags = append(diags, cfg.Check(testSchemas)...)
		if len(diags) > 0 {
			t.Errorf("%s:\n%s", name, render(cfg, diags))
		}
	}
}

// TestEnvSensitive: env() marks what comes from a secret: the variable
// that sets a sensitive runbook variable, the state key, a sensitive
// default; other variables stay plain.
func TestEnvSensitive(t *testing.T) {
	cfg := mustLoad(t, "variable \"pw\" {\n  type      = string\n  sensitive = true\n}\nvariable \"region\" {\n  type = string\n}\n")
	t.Setenv("RUNBOOK_VAR_pw", "s3cret")
	t.Setenv("RUNBOOK_VAR_region", "eu")
	t.Setenv("RUNBOOK_STATE_KEY", "k3y")
	tests := []struct {
		expr      string
		sensitive bool
	}{
		{`env("RUNBOOK_VAR_pw")`, true},
		{`upper(env("RUNBOOK_VAR_pw"))`, true},
		{`env("RUNBOOK_STATE_KEY")`, true},
		{`env("RUNBOOK_VAR_region")`, false},
		{`env("RUNBOOK_UNSET_X", "d")`, false},
		{`env("RUNBOOK_UNSET_X", var.pw)`, true},
	}
	for _, tt := range tests {
		expr, diags := hclsyntax.ParseExpression([]byte(tt.expr), "expr.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		ctx := &hcl.EvalContext{
			Functions: cfg.functions(),
			Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{"pw": cty.StringVal("x").Mark(MarkSensitive)})},
		}
		v, d := expr.Value(ctx)
		if d.HasErrors() {
			t.Fatalf("%s: %v", tt.expr, d)
		}
		if got := v.HasMark(MarkSensitive); got != tt.sensitive {
			t.Errorf("%s: sensitive = %v, want %v", tt.expr, got, tt.sensitive)
		}
	}
}

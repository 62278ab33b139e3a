package lang

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addSeeds(f *testing.F, glob string) {
	files, _ := filepath.Glob(glob)
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParse: parsing, phase-1 decoding, references, graph and phase-2
// checks never panic on any native-syntax input.
func FuzzParse(f *testing.F) {
	addSeeds(f, "testdata/mistakes/*.hcl")
	addSeeds(f, "../../runbooks/examples/*.hcl")
	f.Add([]byte(fullRunbook))
	f.Add([]byte(planRunbook))
	f.Add([]byte(evalRunbook))
	// Huge numbers: text in comments, strings and heredocs; numbers
	// elsewhere.
	f.Add([]byte("# 1e100000\noutput \"o\" {\n  value = [\"1e100000\", <<EOT\n1e100000 ${1e100000}\nEOT\n, 1e100000]\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		fuzzOne(t, "main.hcl", src)
	})
}

// FuzzParseJSON: the same for the JSON syntax.
func FuzzParseJSON(f *testing.F) {
	addSeeds(f, "../../runbooks/examples/*.runbook.json")
	f.Add([]byte(`{"step": {"core.exec": {"a": {"with": {"command": "x"}, "rollback": "native"}}}}`))
	f.Add([]byte(`{"output": {"o": {"value": ["1e100000", "${1e100000}", 1e100000]}}}`))
	f.Add([]byte(`{"variable": {"v": {"type": "list(string)", "default": ["a"]}}, "step": {"core.exec": {"a": {"for_each": "${toset(var.v)}", "with": {"command": "${each.key}"}}}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		fuzzOne(t, "main.runbook.json", src)
	})
}

func fuzzOne(t *testing.T, name string, src []byte) {
	watchdog := time.AfterFunc(10*time.Second, func() { panic("fuzz input took more than 10s") })
	defer watchdog.Stop()
	cfg, _ := LoadSources(map[string][]byte{name: src})
	if cfg == nil {
		t.Fatal("nil config")
	}
	cfg.Check(testSchemas)
	cfg.WriteDiagnostics(io.Discard, nil, 80, false)
	cfg.Graph().Levels()
	cfg.RollbackGraph().Levels()
	vars, _ := cfg.ResolveVariables(VarSources{Prompt: func(*Variable) (string, error) { return "x", nil }})
	s := &Scope{Config: cfg, Vars: vars, RunID: "r", Schemas: testSchemas}
	s.Locals()
	s.Lock()
	s.Outputs()
	for _, name := range cfg.StepOrder {
		st := cfg.Steps[name]
		insts, _, _ := s.Expand(st)
		for _, in := range insts {
			s.When(st, in)
			inputs, _ := s.Inputs(st, in)
			s.RollbackInputs(st, in, inputs, inputs)
			FormatValue(inputs, 2)
		}
	}
	if p, diags := cfg.Plan(context.Background(), PlanOptions{Vars: vars, Schemas: testSchemas}); !diags.HasErrors() && p != nil {
		p.WriteText(io.Discard)
	}
}

// FuzzVarValue: -var values and var files never panic.
func FuzzVarValue(f *testing.F) {
	f.Add("[1, 2]", []byte("a = 1\nb = [\"x\"]\n"))
	f.Add("{ url = \"u\" }", []byte(`{"a": 1}`))
	cfg, _ := LoadSources(map[string][]byte{"main.hcl": []byte(varsRunbook)})
	f.Fuzz(func(t *testing.T, arg string, file []byte) {
		for _, name := range []string{"count", "tags", "conf", "any", "name"} {
			cfg.ResolveVariables(VarSources{Args: []string{name + "=" + arg}})
		}
		cfg.parseVarFile("v.hcl", file)
		cfg.parseVarFile("v.json", file)
	})
}

// FuzzVarFile: a variables file, native or JSON syntax, never panics,
// never takes long, and is refused with a diagnostic rather than crashing
// the parser when it nests too deeply.
func FuzzVarFile(f *testing.F) {
	for _, s := range []string{
		"count = 1\ntags = [\"a\"]\n", `{"count": 1, "tags": ["a"]}`, "conf = { url = \"u\" }\n", "any = [[[[1]]]]\n",
		"any = 1e10000 * 1e10000\n", "any = <<EOT\n${[1]}\nEOT\n", `{"any": "${[[1]]}"}`, "# \x00\nany = \"\\u0000\"\n",
	} {
		f.Add([]byte(s))
	}
	cfg, _ := LoadSources(map[string][]byte{"main.hcl": []byte(varsRunbook)})
	f.Fuzz(func(t *testing.T, src []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic("fuzz input took more than 10s") })
		defer watchdog.Stop()
		for _, name := range []string{"v.vars.hcl", "v.json"} {
			_, diags := cfg.parseVarFile(name, src)
			cfg.WriteDiagnostics(io.Discard, diags, 80, true)
			cfg.JSONDiagnostics(diags)
		}
	})
}

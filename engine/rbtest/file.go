// Package rbtest runs runbook test files (`*.runbooktest.hcl` and
// `*.runbooktest.json`, `runbook test`): each names the runbook beside it,
// variables, mocks that stand in for plugin actions, and run blocks that
// apply the runbook and assert on what happened. A failure sweep applies
// the runbook once per step, failing that step (or crashing the engine
// there and resuming), and checks that the rollback puts everything back.
//
// Tests run the engine in-process (engine/run) against a journal in a
// temporary directory; unmocked steps run their real plugin in-process.
// The package never prints: it returns results and emits test events;
// WriteJUnit renders results as JUnit XML.
package rbtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// Suffixes of test files.
const (
	SuffixHCL  = ".runbooktest.hcl"
	SuffixJSON = ".runbooktest.json"
)

// IsTestFile reports whether name is a runbook test file.
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, SuffixHCL) || strings.HasSuffix(name, SuffixJSON)
}

// Sweep modes.
const (
	SweepFail  = "fail"  // fail each step in turn
	SweepCrash = "crash" // crash the engine at each step, resume, then roll back
)

// File is one parsed test file.
type File struct {
	Path string
	// Runbook is the runbook under test: `runbook = "PATH"` (relative to
	// the test file), else the runbook file of the same name beside it.
	Runbook string
	Vars    map[string]cty.Value
	// VarsRange is where variables are given.
	VarsRange hcl.Range
	Mocks     []*Mock
	Runs      []*Run
	// Sweeps are the sweeps the file asks for (`sweep = "fail"`, "crash"
	// or ["fail", "crash"]).
	Sweeps []string
	// Timeout is the file's per-test timeout (`timeout = "2m"`), 0 = the
	// caller's.
	Timeout time.Duration
	// Restored are the `restored { condition, error_message }` blocks:
	// what must hold after every rollback of a sweep (the world is back
	// where it started).
	Restored []*Assert

	file *hcl.File
	// tmp is the directory tempdir() returns, made on first use.
	tmp string
}

// TempDir is the directory `tempdir()` gave the file's variables ("" if
// none); Suite.Close removes it.
func (f *File) TempDir() string { return f.tmp }

// cleanTempDir empties the tempdir() directory: every test starts from an
// empty one.
func (f *File) cleanTempDir() {
	if f.tmp == "" {
		return
	}
	ents, _ := os.ReadDir(f.tmp)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(f.tmp, e.Name()))
	}
}

// funcs are the functions of the file's expressions: the language's, and
// tempdir(), a directory made for the file's tests (one per file).
func (f *File) funcs() map[string]function.Function {
	fs := lang.Functions(filepath.Dir(f.Path))
	fs["tempdir"] = function.New(&function.Spec{
		Type: function.StaticReturnType(cty.String),
		Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
			if f.tmp == "" {
				d, err := os.MkdirTemp("", "runbook-test-")
				if err != nil {
					return cty.NilVal, err
				}
				f.tmp = d
			}
			return cty.StringVal(f.tmp), nil
		},
	})
	return fs
}

// Mock stands in for a plugin action: `mock "plugin.action" { ... }`.
type Mock struct {
	Plugin, Action string
	// Step limits the mock to one step ("copy": every instance of it) or
	// one instance (`sync["a"]`); "" = every call of the action.
	Step string
	// Outputs of a successful call (attributes left out are null);
	// cty.NilVal when not given.
	Outputs cty.Value
	// Error, when set, is the kind of error every call fails with,
	// with Message.
	Error   sdk.Kind
	Message string
	// Retryable marks the error retryable (the step's retry block then
	// tries again).
	Retryable bool
	// UndoError makes the native undo of the mocked action fail.
	UndoError   sdk.Kind
	UndoMessage string
	Delay       time.Duration
	Checkpoints []string
	DeclRange   hcl.Range
	// OutputsRange is where outputs are given (for diagnostics).
	OutputsRange hcl.Range
}

// Run is a `run "NAME"` block: apply the runbook and check the outcome.
type Run struct {
	Name      string
	Vars      map[string]cty.Value
	VarsRange hcl.Range
	Mocks     []*Mock // tried before the file's mocks
	// Expect is the run state expected ("succeeded" by default).
	Expect    string
	Asserts   []*Assert
	DeclRange hcl.Range
}

// Assert is an `assert { condition, error_message }` block.
type Assert struct {
	Condition, ErrorMessage hcl.Expression
	DeclRange               hcl.Range
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "runbook"}, {Name: "variables"}, {Name: "sweep"}, {Name: "timeout"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "mock", LabelNames: []string{"action"}}, {Type: "run", LabelNames: []string{"name"}},
		{Type: "restored"}},
}

var runSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "variables"}, {Name: "expect"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "mock", LabelNames: []string{"action"}}, {Type: "assert"}},
}

var mockSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "step"}, {Name: "outputs"}, {Name: "error"}, {Name: "message"},
		{Name: "retryable"}, {Name: "undo_error"}, {Name: "undo_message"}, {Name: "delay"}, {Name: "checkpoints"}},
}

var assertSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "condition", Required: true}, {Name: "error_message"}},
}

// runStates are the states a run block may expect.
var runStates = []string{"succeeded", "rolled_back", "rollback_failed", "failed", "aborted"}

// errorKinds are the sdk error kinds a mock may fail with.
var errorKinds = []sdk.Kind{sdk.KindInvalid, sdk.KindAuth, sdk.KindUnreachable, sdk.KindConflict, sdk.KindQuota,
	sdk.KindNotFound, sdk.KindAssertion, sdk.KindRejected, sdk.KindTimeout, sdk.KindCancelled, sdk.KindInternal}

// ParseFile reads and decodes a test file. The structure is checked here;
// whether mocks and variables fit the runbook is checked by Load.
func ParseFile(path string) (*File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read test file", Detail: err.Error()}}
	}
	return ParseSource(path, src)
}

// ParseSource decodes a test file from memory; names ending in .json use
// the JSON syntax.
func ParseSource(path string, src []byte) (*File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(path, ".json") {
		f, diags = p.ParseJSON(src, path)
	} else {
		f, diags = p.ParseHCL(src, path)
	}
	tf := &File{Path: path, file: f}
	if f != nil && f.Body != nil {
		tf.VarsRange = f.Body.MissingItemRange()
	}
	if diags.HasErrors() {
		return tf, diags
	}
	content, d := f.Body.Content(fileSchema)
	diags = append(diags, d...)
	if a, ok := content.Attributes["runbook"]; ok {
		var rel string
		diags = append(diags, constString(a, &rel)...)
		switch {
		case filepath.IsAbs(rel):
			tf.Runbook = rel
		case rel != "":
			tf.Runbook = filepath.Join(filepath.Dir(path), rel)
		}
	} else {
		tf.Runbook, d = runbookBeside(path, f.Body.MissingItemRange())
		diags = append(diags, d...)
	}
	if a, ok := content.Attributes["variables"]; ok {
		tf.Vars, d = decodeVars(a, tf.funcs())
		tf.VarsRange = a.Expr.Range()
		diags = append(diags, d...)
	}
	if a, ok := content.Attributes["sweep"]; ok {
		tf.Sweeps, d = decodeSweep(a)
		diags = append(diags, d...)
	}
	if a, ok := content.Attributes["timeout"]; ok {
		diags = append(diags, constDuration(a, &tf.Timeout)...)
	}
	names := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "mock":
			m, d := decodeMock(b, tf.funcs())
			diags = append(diags, d...)
			if m != nil {
				tf.Mocks = append(tf.Mocks, m)
			}
		case "restored":
			a, d := decodeAssert(b)
			diags = append(diags, d...)
			if a != nil {
				tf.Restored = append(tf.Restored, a)
			}
		case "run":
			r, d := decodeRun(b, tf.funcs())
			diags = append(diags, d...)
			if prev, dup := names[r.Name]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate run block",
					Detail:  fmt.Sprintf("A run named %q is already declared at %s.", r.Name, prev),
					Subject: b.LabelRanges[0].Ptr()})
				continue
			}
			names[r.Name] = b.DefRange
			tf.Runs = append(tf.Runs, r)
		}
	}
	return tf, diags
}

// runbookBeside finds the runbook a test file tests: NAME.hcl,
// NAME.runbook.json or the directory NAME beside NAME.runbooktest.hcl.
func runbookBeside(path string, rng hcl.Range) (string, hcl.Diagnostics) {
	base := strings.TrimSuffix(strings.TrimSuffix(path, SuffixHCL), SuffixJSON)
	cands := []string{base + ".hcl", base + ".runbook.json", base + ".json", base}
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No runbook to test",
		Detail:  fmt.Sprintf("No %s beside the test file: name it after its runbook, or set runbook = \"PATH\".", strings.Join(cands[:2], " or ")),
		Subject: rng.Ptr()}}
}

func decodeVars(a *hcl.Attribute, funcs map[string]function.Function) (map[string]cty.Value, hcl.Diagnostics) {
	v, diags := a.Expr.Value(&hcl.EvalContext{Functions: funcs})
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid variables",
			Detail: "variables must be an object: { NAME = VALUE, ... }.", Subject: a.Expr.Range().Ptr()}}
	}
	return v.AsValueMap(), nil
}

func decodeSweep(a *hcl.Attribute) ([]string, hcl.Diagnostics) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, diags
	}
	var out []string
	bad := func() hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid sweep",
			Detail:  fmt.Sprintf("sweep is %q, %q or a list of them.", SweepFail, SweepCrash),
			Subject: a.Expr.Range().Ptr()}}
	}
	if v.IsNull() {
		return nil, bad()
	}
	vals := []cty.Value{v}
	if v.Type().IsTupleType() || v.Type().IsListType() {
		vals = v.AsValueSlice()
	}
	for _, x := range vals {
		if x.IsNull() || x.Type() != cty.String || (x.AsString() != SweepFail && x.AsString() != SweepCrash) {
			return nil, bad()
		}
		out = append(out, x.AsString())
	}
	return out, nil
}

func decodeMock(b *hcl.Block, funcs map[string]function.Function) (*Mock, hcl.Diagnostics) {
	m := &Mock{DeclRange: b.DefRange}
	var diags hcl.Diagnostics
	plugin, action, ok := strings.Cut(b.Labels[0], ".")
	if !ok || plugin == "" || action == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mock label",
			Detail:  fmt.Sprintf("%q is not PLUGIN.ACTION (for example \"couchdb.replicate\").", b.Labels[0]),
			Subject: b.LabelRanges[0].Ptr()})
	}
	m.Plugin, m.Action = plugin, action
	content, d := b.Body.Content(mockSchema)
	diags = append(diags, d...)
	if a, ok := content.Attributes["step"]; ok {
		diags = append(diags, constString(a, &m.Step)...)
		m.Step = strings.TrimPrefix(m.Step, "step.")
	}
	if a, ok := content.Attributes["outputs"]; ok {
		v, d := a.Expr.Value(&hcl.EvalContext{Functions: funcs})
		diags = append(diags, d...)
		if !d.HasErrors() {
			m.Outputs, m.OutputsRange = v, a.Expr.Range()
		}
	}
	for _, k := range []struct {
		name string
		out  *sdk.Kind
	}{{"error", &m.Error}, {"undo_error", &m.UndoError}} {
		if a, ok := content.Attributes[k.name]; ok {
			var s string
			diags = append(diags, constString(a, &s)...)
			*k.out = sdk.Kind(s)
			if s != "" && !knownKind(*k.out) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown error kind",
					Detail:  fmt.Sprintf("%q is not an error kind; use one of %s.", s, kindList()),
					Subject: a.Expr.Range().Ptr()})
			}
		}
	}
	if a, ok := content.Attributes["message"]; ok {
		diags = append(diags, constString(a, &m.Message)...)
	}
	if a, ok := content.Attributes["retryable"]; ok {
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if v.IsNull() || v.Type() != cty.Bool {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value",
					Detail: "retryable must be true or false.", Subject: a.Expr.Range().Ptr()})
			} else {
				m.Retryable = v.True()
			}
		}
	}
	if a, ok := content.Attributes["undo_message"]; ok {
		diags = append(diags, constString(a, &m.UndoMessage)...)
	}
	if a, ok := content.Attributes["delay"]; ok {
		diags = append(diags, constDuration(a, &m.Delay)...)
	}
	if a, ok := content.Attributes["checkpoints"]; ok {
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if v.IsNull() || !(v.Type().IsTupleType() || v.Type().IsListType()) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid checkpoints",
					Detail: "checkpoints is a list of strings.", Subject: a.Expr.Range().Ptr()})
			} else {
				for _, x := range v.AsValueSlice() {
					if x.IsNull() || x.Type() != cty.String {
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid checkpoints",
							Detail: "checkpoints is a list of strings.", Subject: a.Expr.Range().Ptr()})
						break
					}
					m.Checkpoints = append(m.Checkpoints, x.AsString())
				}
			}
		}
	}
	return m, diags
}

func decodeRun(b *hcl.Block, funcs map[string]function.Function) (*Run, hcl.Diagnostics) {
	r := &Run{Name: b.Labels[0], Expect: "succeeded", DeclRange: b.DefRange}
	content, diags := b.Body.Content(runSchema)
	if a, ok := content.Attributes["variables"]; ok {
		v, d := decodeVars(a, funcs)
		diags = append(diags, d...)
		r.Vars, r.VarsRange = v, a.Expr.Range()
	}
	if a, ok := content.Attributes["expect"]; ok {
		diags = append(diags, constString(a, &r.Expect)...)
		if !contains(runStates, r.Expect) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid expect",
				Detail:  fmt.Sprintf("expect is one of %s.", quoted(runStates)),
				Subject: a.Expr.Range().Ptr()})
		}
	}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "mock":
			m, d := decodeMock(blk, funcs)
			diags = append(diags, d...)
			r.Mocks = append(r.Mocks, m)
		case "assert":
			a, d := decodeAssert(blk)
			diags = append(diags, d...)
			if a != nil {
				r.Asserts = append(r.Asserts, a)
			}
		}
	}
	return r, diags
}

// decodeAssert decodes an assert (or restored) block.
func decodeAssert(b *hcl.Block) (*Assert, hcl.Diagnostics) {
	c, diags := b.Body.Content(assertSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	as := &Assert{Condition: c.Attributes["condition"].Expr, DeclRange: b.DefRange}
	if a, ok := c.Attributes["error_message"]; ok {
		as.ErrorMessage = a.Expr
	}
	return as, nil
}

func constString(a *hcl.Attribute, out *string) hcl.Diagnostics {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	if v.IsNull() || v.Type() != cty.String {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value",
			Detail: fmt.Sprintf("%s must be a string.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	*out = v.AsString()
	return nil
}

func constDuration(a *hcl.Attribute, out *time.Duration) hcl.Diagnostics {
	var s string
	if d := constString(a, &s); d.HasErrors() {
		return d
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur < 0 {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid duration",
			Detail: fmt.Sprintf("%s must be a duration such as \"1s\" or \"2m\".", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	*out = dur
	return nil
}

func knownKind(k sdk.Kind) bool {
	for _, x := range errorKinds {
		if x == k {
			return true
		}
	}
	return false
}

func kindList() string {
	s := make([]string, len(errorKinds))
	for i, k := range errorKinds {
		s[i] = string(k)
	}
	return quoted(s)
}

func quoted(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Find lists the test files named by paths: files as given, directories
// searched recursively (hidden directories and testdata skipped, as the go
// tool does), sorted.
func Find(paths ...string) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && IsTestFile(path) && !seen[path] {
				seen[path] = true
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

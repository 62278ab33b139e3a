package rbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/sdk"
)

// Options configure how test files are loaded and run.
type Options struct {
	// Builtins are the plugins compiled into the binary (the CLI passes
	// plugins/builtin's registry); unmocked steps run them in-process.
	Builtins pluginhost.Builtins
	// Timeout bounds each test (a run block, a sweep); 0 = none, unless
	// the file sets one.
	Timeout time.Duration
	// OnEvent, when set, is told each test event as it happens (from
	// several goroutines when files run in parallel).
	OnEvent func(Event)
	// StepSink, when set, also receives the engine's step events.
	StepSink event.Sink
	// Sweeps are the sweeps the caller will ask Run for on top of the
	// file's (Load checks that they can run).
	Sweeps []string
	// Match, when set, selects the tests to run by name ("run.NAME",
	// "sweep.fail", "sweep.crash").
	Match func(name string) bool
}

// Suite is a loaded test file: its runbook, checked against the plugins'
// schemas and the mocks, with its plugin host open. Close it when done.
type Suite struct {
	File   *File
	Config *lang.Config
	opts   Options
	host   *pluginhost.Host
	// vars are the file's variables resolved; runVars each run's.
	vars    map[string]cty.Value
	runVars map[string]map[string]cty.Value
}

// Close stops the plugins.
func (s *Suite) Close() {
	if s.host != nil {
		s.host.Close()
	}
	if d := s.File.TempDir(); d != "" {
		os.RemoveAll(d)
	}
}

// Files are the runbook's and the test file's sources, for diagnostic
// snippets.
func (s *Suite) Files() map[string]*hcl.File { return files(s.File, s.Config) }

func files(f *File, cfg *lang.Config) map[string]*hcl.File {
	out := map[string]*hcl.File{}
	if cfg != nil {
		out = cfg.AllFiles()
	}
	if f != nil && f.file != nil {
		out[f.Path] = f.file
	}
	return out
}

// DiagError carries the diagnostics of a test file or of its runbook.
type DiagError struct {
	Path  string
	Diags hcl.Diagnostics
	Files map[string]*hcl.File
}

func (e *DiagError) Error() string { return e.Path + ": " + e.Diags.Error() }

// Load parses a test file, loads its runbook, checks the runbook's steps
// and the mocks against the plugins' schemas, and resolves the variables
// of the file and of each run. Every mistake comes back at once, as a
// *DiagError.
func Load(path string, opts Options) (*Suite, error) {
	f, diags := ParseFile(path)
	if f == nil || f.Runbook == "" || f.file == nil || f.file.Body == nil {
		if f != nil && f.TempDir() != "" {
			os.RemoveAll(f.TempDir())
		}
		return nil, &DiagError{Path: path, Diags: diags, Files: files(f, nil)}
	}
	cfg, d := lang.Load(f.Runbook)
	diags = append(diags, d...)
	if d.HasErrors() {
		if f.TempDir() != "" {
			os.RemoveAll(f.TempDir())
		}
		return nil, &DiagError{Path: path, Diags: diags, Files: files(f, cfg)}
	}
	s := &Suite{File: f, Config: cfg, opts: opts, runVars: map[string]map[string]cty.Value{}}
	s.host = openHost(cfg, opts.Builtins)
	diags = append(diags, cfg.Check(s.host)...)
	for _, m := range f.Mocks {
		diags = append(diags, s.checkMock(m)...)
	}
	var vd hcl.Diagnostics
	s.vars, vd = s.resolve(f.Vars, nil, f.VarsRange, hcl.Range{})
	diags = append(diags, vd...)
	for _, r := range f.Runs {
		for _, m := range r.Mocks {
			diags = append(diags, s.checkMock(m)...)
		}
		v, d := s.resolve(f.Vars, r.Vars, f.VarsRange, r.VarsRange)
		diags = append(diags, d...)
		s.runVars[r.Name] = v
	}
	diags = append(diags, s.checkApprovals()...)
	if diags = unique(diags); diags.HasErrors() {
		s.Close()
		return nil, &DiagError{Path: path, Diags: diags, Files: files(f, cfg)}
	}
	return s, nil
}

// openHost is a plugin host that runs builtins in-process; external
// plugins are found as a run finds them (sources relative to the runbook,
// its lock file).
func openHost(cfg *lang.Config, builtins pluginhost.Builtins) *pluginhost.Host {
	dir := cfg.BaseDir
	lock, _ := pluginhost.ReadLockFile(filepath.Join(dir, pluginhost.LockFileName))
	src := map[string]string{}
	for name, p := range cfg.Plugins {
		if p != nil && p.Source != "" {
			s := p.Source
			if !filepath.IsAbs(s) {
				s = filepath.Join(dir, s)
			}
			src[name] = s
		}
	}
	return pluginhost.New(pluginhost.Options{Builtins: builtins, InProcess: true, Lock: lock, Sources: src,
		Dirs: []string{filepath.Join(dir, ".runbook", "plugins")}})
}

// checkMock checks that a mock names an action that exists, a step of the
// runbook, and outputs the action has; its outputs are converted to the
// action's types.
func (s *Suite) checkMock(m *Mock) hcl.Diagnostics {
	if m.Plugin == "" || m.Action == "" {
		return nil // reported by ParseFile
	}
	as, ok, err := s.host.ActionSchema(m.Plugin, m.Action)
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown plugin in mock",
			Detail: fmt.Sprintf("Plugin %q: %v.", m.Plugin, err), Subject: m.DeclRange.Ptr()}}
	}
	if !ok {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown action in mock",
			Detail: fmt.Sprintf("Plugin %q has no action %q.", m.Plugin, m.Action), Subject: m.DeclRange.Ptr()}}
	}
	var diags hcl.Diagnostics
	if m.Step != "" {
		name, _, _ := strings.Cut(m.Step, "[")
		if _, ok := s.Config.Steps[name]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown step in mock",
				Detail: fmt.Sprintf("The runbook has no step %q%s.", name, didYouMean(name, s.Config.StepOrder)), Subject: m.DeclRange.Ptr()})
		}
	}
	if m.Outputs != cty.NilVal {
		outs, err := mockOutputs(as, m.Outputs)
		if err != nil {
			var names []string
			for _, a := range as.Outputs {
				names = append(names, a.Name)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mock outputs",
				Detail:  fmt.Sprintf("%s.%s: %v (its outputs: %s).", m.Plugin, m.Action, err, strings.Join(names, ", ")),
				Subject: m.OutputsRange.Ptr()})
		} else {
			m.Outputs = outs
		}
	}
	return diags
}

// waiting are the actions that wait for a person: unmocked, a test would
// hang until its timeout.
var waiting = map[string]bool{"core.approve": true}

// checkApprovals: every step that waits for a person is mocked in every
// test that applies it (the file's mocks serve the sweeps).
func (s *Suite) checkApprovals() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range s.Config.StepOrder {
		st := s.Config.Steps[name]
		if !waiting[st.Plugin+"."+st.Action] {
			continue
		}
		file := newRecorder(nil, s.File.Mocks).mock(st.Plugin, st.Action, name) != nil
		var where []string
		if !file && len(s.File.Sweeps)+len(s.opts.Sweeps) > 0 {
			where = append(where, "the sweeps")
		}
		for _, r := range s.File.Runs {
			if !file && newRecorder(nil, r.Mocks).mock(st.Plugin, st.Action, name) == nil {
				where = append(where, fmt.Sprintf("run %q", r.Name))
			}
		}
		if len(where) > 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Approval not mocked",
				Detail: fmt.Sprintf("Step %q (%s.%s) waits for a person, which no test can answer: add mock %q { outputs = { approved_by = \"test\" } } for %s.",
					name, st.Plugin, st.Action, st.Plugin+"."+st.Action, strings.Join(where, ", ")),
				Subject: st.DeclRange.Ptr()})
		}
	}
	return diags
}

func didYouMean(name string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := distance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// distance is the Levenshtein distance of two short names.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(b)]
}

// resolve resolves the runbook's variables from the file's values and a
// run's (which win), as -var arguments would be.
func (s *Suite) resolve(file, run map[string]cty.Value, fileRange, runRange hcl.Range) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	merged := map[string]cty.Value{}
	for _, src := range []struct {
		vals map[string]cty.Value
		rng  hcl.Range
	}{{file, fileRange}, {run, runRange}} {
		for k, v := range src.vals {
			if _, ok := s.Config.Variables[k]; !ok {
				names := make([]string, 0, len(s.Config.Variables))
				for n := range s.Config.Variables {
					names = append(names, n)
				}
				sort.Strings(names)
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown variable",
					Detail:  fmt.Sprintf("%s declares no variable %q%s.", s.File.Runbook, k, didYouMean(k, names)),
					Subject: src.rng.Ptr()})
				continue
			}
			merged[k] = v
		}
	}
	var args []string
	for k, v := range merged {
		args = append(args, k+"="+varArg(v))
	}
	sort.Strings(args)
	vals, d := s.Config.ResolveVariables(lang.VarSources{Args: args})
	for _, x := range d {
		if x.Subject == nil || !strings.HasSuffix(x.Subject.Filename, ".hcl") && !strings.HasSuffix(x.Subject.Filename, ".json") {
			// A -var value of ours: point at the test's variables.
			x.Subject = runRange.Ptr()
			if runRange.Filename == "" {
				x.Subject = fileRange.Ptr()
			}
		}
	}
	return vals, append(diags, d...)
}

// unique drops repeated diagnostics (a run repeats its file's).
func unique(diags hcl.Diagnostics) hcl.Diagnostics {
	seen := map[string]bool{}
	var out hcl.Diagnostics
	for _, d := range diags {
		k := d.Summary + "\x00" + d.Detail
		if d.Subject != nil {
			k += "\x00" + d.Subject.String()
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}

// varArg writes a value as a -var argument: raw for strings, HCL otherwise.
func varArg(v cty.Value) string {
	if v.Type() == cty.String && !v.IsNull() {
		return v.AsString()
	}
	return string(hclwrite.TokensForValue(v).Bytes())
}

func convertTo(v cty.Value, ty cty.Type) (cty.Value, error) { return convert.Convert(v, ty) }

// execution is one run of the runbook under test, with what the
// providers recorded and the events seen.
type execution struct {
	res    *run.Result
	rec    *recorder
	vars   map[string]cty.Value
	mu     sync.Mutex
	events []event.Event
	// runID and store: the run's journal, for a resume or a rollback.
	runID string
	store *journal.LocalStore
}

func (x *execution) Emit(ev event.Event) {
	x.mu.Lock()
	x.events = append(x.events, ev)
	x.mu.Unlock()
}

// Events is a copy of the events seen.
func (x *execution) Events() []event.Event {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]event.Event(nil), x.events...)
}

// newExecution prepares a run with its own journal in dir.
func (s *Suite) newExecution(dir string, vars map[string]cty.Value, mocks []*Mock) *execution {
	// A test's journal is thrown away with its directory, and a crash is
	// simulated record by record (crashJournal), not by the disk: no
	// fsync.
	store := journal.NewLocal(dir)
	store.NoSync = true
	x := &execution{vars: vars, store: store}
	x.rec = newRecorder(s.host, mocks)
	return x
}

func (s *Suite) runbook(runID string, vars map[string]cty.Value) *run.Runbook {
	return run.FromConfig(&lang.Scope{Config: s.Config, Vars: vars, RunID: runID, Schemas: s.host})
}

func (s *Suite) options(x *execution, j journal.Journal) run.Options {
	var sink event.Sink = x
	if s.opts.StepSink != nil {
		sink = event.Func(func(ev event.Event) { x.Emit(ev); s.opts.StepSink.Emit(ev) })
	}
	return run.Options{RunID: x.runID, Providers: x.rec, Journal: j, Sink: sink,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }}
}

// apply starts a new run. With crashAt set, the journal stops recording
// once that step's call returned, as a crash there would leave it, and the
// run is stopped.
func (x *execution) apply(ctx context.Context, s *Suite) error {
	meta := &journal.Meta{Started: time.Now()}
	j, err := x.store.Create(meta)
	if err != nil {
		return err
	}
	x.runID = meta.ID
	defer j.Close()
	var jr journal.Journal = j
	var cj *crashJournal
	if x.rec.crashAt != "" {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cj = &crashJournal{Journal: j}
		x.rec.mu.Lock()
		x.rec.crash = func() { cj.crashed.Store(true); cancel() }
		x.rec.mu.Unlock()
		jr, ctx = cj, cctx
	}
	x.res, err = run.Apply(ctx, s.runbook(x.runID, x.vars), s.options(x, jr))
	if cj != nil && cj.crashed.Load() {
		// The engine is dead: what it says after the crash does not count.
		x.res = nil
		return nil
	}
	return err
}

// resume continues the run from its journal.
func (x *execution) resume(ctx context.Context, s *Suite) error {
	j, st, err := x.store.Open(x.runID)
	if err != nil {
		return err
	}
	defer j.Close()
	if err := j.Append(&journal.Record{Type: journal.RecRunResumed, Meta: &journal.Meta{ID: x.runID}}); err != nil {
		return err
	}
	o := s.options(x, j)
	o.Resume = st
	x.res, err = run.Apply(ctx, s.runbook(x.runID, x.vars), o)
	return err
}

// rollback undoes the run from its journal, as `runbook rollback` does.
func (x *execution) rollback(ctx context.Context, s *Suite) error {
	j, st, err := x.store.Open(x.runID)
	if err != nil {
		return err
	}
	defer j.Close()
	x.res, err = run.Rollback(ctx, s.runbook(x.runID, x.vars), s.options(x, j), st)
	return err
}

// crashJournal refuses every record once crashed is set: the journal ends
// where a crash at that point would have left it, and nothing waiting for
// a record to be durable (a plugin's checkpoint) is told it is.
type crashJournal struct {
	journal.Journal
	crashed atomic.Bool
}

func (c *crashJournal) Append(r *journal.Record) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Journal.Append(r)
}

func (c *crashJournal) AppendNoWait(r *journal.Record) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Journal.AppendNoWait(r)
}

// tempDir is a temporary directory for one test's journals.
func tempDir() (string, func(), error) {
	d, err := os.MkdirTemp("", "runbook-test-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// kindOf classifies what an instance of a step does on rollback, with the
// inputs it ran with.
func (s *Suite) kindOf(st *lang.Step, inputs cty.Value) lang.Reversibility {
	if st.Rollback != nil {
		return lang.Reversible
	}
	as, ok, _ := s.host.ActionSchema(st.Plugin, st.Action)
	if ok && as.Capabilities.ReadOnly || lang.DeclaresReadOnly(inputs) {
		return lang.ReadOnly
	}
	return lang.Irreversible
}

// nativeUndo: the step's action can undo itself.
func (s *Suite) nativeUndo(st *lang.Step) bool {
	as, ok, _ := s.host.ActionSchema(st.Plugin, st.Action)
	return ok && as.Capabilities.NativeUndo
}

var _ sdk.Provider = (*provider)(nil)

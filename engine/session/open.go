package session

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/sdk"
)

// Runbook is a loaded runbook whose steps were checked against its plugins'
// schemas and whose variables are resolved, with its plugin host open.
// Close it when done.
type Runbook struct {
	Config *lang.Config
	Vars   map[string]cty.Value // sensitive ones marked
	// Warnings are the non-error diagnostics found while opening.
	Warnings hcl.Diagnostics
	Host     *pluginhost.Host
	StateDir string

	s      *Session
	pooled *pooledHost             // Host, from Options.Hosts: given back by Close
	git    func() *journal.GitInfo // the runbook's git commit, asked for while it is checked
}

// Close stops the runbook's plugins (gives them back to Options.Hosts),
// and waits for the git process asked about the runbook's commit: none is
// left running (and writing in .git) once the caller is done.
func (r *Runbook) Close() {
	r.git()
	if r.pooled != nil {
		r.s.opts.Hosts.put(r.pooled)
		r.pooled, r.Host = nil, nil
		return
	}
	if r.Host != nil {
		// Every call has returned: the plugins need only be told to exit,
		// not waited for.
		r.Host.CloseNoWait()
	}
}

// Check loads a runbook (a file or a directory, or several files forming
// one runbook) and checks its steps against the plugins' schemas, without
// resolving variables: what `validate` reports. The config may be nil when
// nothing could be parsed.
func (s *Session) Check(paths ...string) (*lang.Config, hcl.Diagnostics) {
	cfg, diags := lang.Load(paths...)
	if cfg == nil || len(cfg.Files) == 0 {
		return cfg, diags
	}
	h, _, err := s.openHost(cfg, "", false)
	if err != nil {
		return cfg, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot open plugins", Detail: err.Error()})
	}
	defer h.CloseNoWait()
	return cfg, append(diags, cfg.Check(Schemas{h})...)
}

// Open loads a runbook, opens its plugin host, checks every step against
// the plugins' schemas and resolves the variables. Mistakes come back as a
// *DiagError holding every diagnostic found, not only the first.
func (s *Session) Open(vars lang.VarSources, paths ...string) (*Runbook, error) {
	cfg, diags := lang.Load(paths...)
	if diags.HasErrors() {
		return nil, &DiagError{Config: cfg, Diags: diags, What: "the runbook has errors"}
	}
	dir := s.stateDirFor(cfg)
	r := &Runbook{Config: cfg, s: s, StateDir: dir, git: gitLater(RunbookDir(cfg))}
	h, pooled, err := s.openHost(cfg, dir, true)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.Host, r.pooled = h, pooled
	diags = append(diags, cfg.Check(Schemas{h})...)
	values, d := cfg.ResolveVariables(vars)
	diags = append(diags, d...)
	for _, v := range values {
		s.mask.AddValue(v, lang.MarkSensitive)
		s.learnURLPasswords(v)
	}
	if diags.HasErrors() {
		r.Close()
		return nil, s.diagError(cfg, diags, "the runbook has errors")
	}
	r.Vars, r.Warnings = values, s.maskDiags(diags)
	return r, nil
}

// Plan computes what a run would do, with each plugin's own plan for the
// actions that support it. Plugins see sensitive inputs while planning:
// their stderr is masked like during a run.
func (r *Runbook) Plan(ctx context.Context) (*lang.Plan, error) {
	p, d := r.Config.Plan(ctx, lang.PlanOptions{
		Vars: r.Vars, Schemas: Schemas{r.Host},
		Provider: func(ctx context.Context, name string) (sdk.Provider, error) { return r.Host.Provider(ctx, name) },
	})
	if d.HasErrors() || p == nil {
		return nil, r.s.diagError(r.Config, d, "cannot plan")
	}
	r.Warnings = append(r.Warnings, r.s.maskDiags(d)...)
	return p, nil
}

// openHost builds the plugin host for a loaded runbook: the lock file beside
// the runbook, its plugin blocks (source paths relative to the runbook) and
// RUNBOOK_STATE_DIR for the plugin processes; their stderr is masked. The
// plugins the runbook uses start at once. With pool and Options.Hosts, the
// host comes from (and goes back to) that pool: pooled is set.
func (s *Session) openHost(cfg *lang.Config, stateDir string, pool bool) (_ *pluginhost.Host, pooled *pooledHost, _ error) {
	dir := RunbookDir(cfg)
	lock, err := pluginhost.ReadLockFile(filepath.Join(dir, pluginhost.LockFileName))
	if err != nil {
		return nil, nil, err
	}
	opts := pluginhost.Options{
		Builtins: s.opts.Builtins,
		Lock:     lock,
		Stderr:   s.stderr,
		Sources:  PluginSources(cfg),
		Dirs:     []string{filepath.Join(dir, DefaultStateDir, "plugins")},
		SelfExe:  s.opts.Getenv("RUNBOOK_SELF_EXE"),
	}
	if stateDir != "" {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return nil, nil, fmt.Errorf("state dir: %w", err)
		}
		// RUNBOOK_HINT_STATE_FLAG: what the commands a plugin prints (core.approve)
		// need to find the state directory from the working directory.
		flag := s.stateFlag(stateDir)
		if u := s.databaseURL(); u != "" {
			// Runs are in the database; approvals stay in the directory.
			flag = s.databaseFlag(journal.RedactURL(u)) + flag
		}
		opts.Env = append(opts.Env, "RUNBOOK_STATE_DIR="+abs, "RUNBOOK_HINT_STATE_FLAG="+flag)
	}
	if pool && s.opts.Hosts != nil {
		ph := s.opts.Hosts.get(poolKey(dir, opts), s.mask, s.stderr, func(stderr io.Writer) *pluginhost.Host {
			opts.Stderr = stderr
			return pluginhost.New(opts)
		})
		// A plugin that died since is started again by its first call.
		ph.h.Prestart(context.Background(), UsedPlugins(cfg)...)
		return ph.h, ph, nil
	}
	h := pluginhost.New(opts)
	h.Prestart(context.Background(), UsedPlugins(cfg)...)
	return h, nil, nil
}

// UsedPlugins lists every plugin the runbook's steps and rollbacks use,
// sorted.
func UsedPlugins(cfg *lang.Config) []string {
	if cfg == nil {
		return nil
	}
	set := map[string]bool{}
	for _, st := range cfg.Steps {
		if st == nil {
			continue
		}
		set[st.Plugin] = true
		if st.Rollback != nil {
			set[st.Rollback.Plugin] = true
		}
	}
	delete(set, "")
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// RunbookDir is the runbook's directory ("." if unknown).
func RunbookDir(cfg *lang.Config) string {
	if cfg != nil && cfg.BaseDir != "" {
		return cfg.BaseDir
	}
	if cfg == nil || len(cfg.Files) == 0 {
		return "."
	}
	names := make([]string, 0, len(cfg.Files))
	for n := range cfg.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return filepath.Dir(names[0])
}

// PluginSources maps plugin names to their `source` paths, made absolute
// relative to the runbook's directory.
func PluginSources(cfg *lang.Config) map[string]string {
	if cfg == nil {
		return nil
	}
	dir := RunbookDir(cfg)
	out := map[string]string{}
	for name, p := range cfg.Plugins {
		if p == nil || p.Source == "" {
			continue
		}
		src := p.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(dir, src)
		}
		out[name] = src
	}
	return out
}

// Schemas adapts a plugin host to lang.SchemaSource and lang.ActionLister.
type Schemas struct{ Host *pluginhost.Host }

var (
	_ lang.SchemaSource = Schemas{}
	_ lang.ActionLister = Schemas{}
)

// ActionSchema is the schema of plugin.action.
func (s Schemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	return s.Host.ActionSchema(plugin, action)
}

// ActionNames lists a plugin's actions, sorted.
func (s Schemas) ActionNames(plugin string) ([]string, error) {
	ps, err := s.Host.Schema(context.Background(), plugin)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ps.Actions))
	for n := range ps.Actions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Package pluginhost finds, launches and talks to plugins.
//
// Builtin plugins ship inside the runbook binary, which hands them to the
// host (Options.Builtins: the engine itself knows no plugin); the host runs
// them out of process by re-executing that binary as `runbook plugin serve
// NAME`.
// External plugins are executables named runbook-plugin-NAME, found in
// ./.runbook/plugins, $XDG_DATA_HOME/runbook/plugins or an explicit source
// path, and pinned by sha256 in the lock file. Every plugin process is
// started lazily, reused for the whole run, and killed by Close.
package pluginhost

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/runbookdev/runbook/sdk"
)

// Builtins is the set of plugins compiled into the runbook binary
// (plugins/builtin gives it; the engine knows no plugin of its own). The
// host runs a builtin out of process by re-executing its own binary as
// `SELF plugin serve NAME`, and reads the builtin's schema from the copy
// Get returns, without waiting for that process.
type Builtins interface {
	// Names lists the builtin plugins, sorted.
	Names() []string
	// Get returns a fresh builtin plugin by name.
	Get(name string) (*sdk.Plugin, bool)
}

// noBuiltins is the Builtins of a host given none.
type noBuiltins struct{}

func (noBuiltins) Names() []string                { return nil }
func (noBuiltins) Get(string) (*sdk.Plugin, bool) { return nil, false }

// Options configure a Host.
type Options struct {
	// Builtins are the plugins this binary carries; nil = none.
	Builtins Builtins
	// SelfExe is the runbook binary used for builtins (`runbook plugin serve
	// NAME`); "" = os.Executable(). Only a Go test binary may name another
	// binary: a runbook binary refuses any SelfExe but itself.
	SelfExe string
	// PluginCache holds the private copies of external plugins that are
	// executed, one directory per sha256 ("" = the user's cache directory's
	// runbook/plugins; a temporary directory when that is unusable).
	PluginCache string
	// InProcess runs builtins in-process through sdk.Local (tests and engine
	// benchmarks). External plugins still run out of process.
	InProcess bool
	// Dirs are extra search dirs for runbook-plugin-NAME, searched before
	// the defaults ./.runbook/plugins and $XDG_DATA_HOME/runbook/plugins.
	Dirs []string
	// Sources maps a plugin name to an explicit executable path (from
	// `plugin "NAME" { source = PATH }`).
	Sources map[string]string
	// Lock is the parsed .runbook.lock.hcl; nil = none, and external
	// plugins are then refused unless AllowUnlocked is set.
	Lock *LockFile
	// AllowUnlocked lets external plugins without a lock entry run
	// (`runbook init` uses it to compute checksums; tests).
	AllowUnlocked bool
	// Stderr receives the plugin processes' stderr lines; nil = discard.
	Stderr io.Writer
	// Env is extra environment for plugin processes (KEY=VALUE).
	Env []string
	// Extra registers providers by name (tests register in-process plugins).
	Extra map[string]sdk.Provider
}

// Host hands out one Provider per plugin name.
type Host struct {
	opts Options

	mu sync.Mutex
	// plugins by name; guarded by mu. An entry is created on the first
	// Provider call and reused until Close.
	plugins map[string]*entry
	// closed is set by Close; guarded by mu.
	closed bool

	// selfSum is the sha256 of the runbook binary (builtins' checksum),
	// computed on first use by Info.
	selfSumOnce sync.Once
	selfSum     string

	// own caches the schemas of the builtins this binary carries, by name;
	// guarded by ownMu. See ownSchema.
	ownMu sync.Mutex
	own   map[string]*sdk.PluginSchema
}

// entry is one plugin: its provider, cached schema and launch details.
// The fields below mu are written once, under mu, by a successful start.
type entry struct {
	// mu serialises starts; started is set (under mu) once the provider
	// and schema are ready. A failed start is not cached: the next caller
	// tries again (a cancelled context must not poison the plugin for the
	// rest of the run).
	mu       sync.Mutex
	started  bool
	provider sdk.Provider
	schema   *sdk.PluginSchema
	version  string
	sha256   string
	// builtinProc is set for a builtin run out of process.
	builtinProc bool
	closer      func(wait bool)
}

// local runs p in-process; Close runs p's Close hook.
func (e *entry) local(p *sdk.Plugin) {
	prov := sdk.Local(p)
	e.provider = prov
	if c, ok := prov.(io.Closer); ok {
		e.closer = func(bool) { _ = c.Close() }
	}
}

// New returns a Host; nothing is started until Provider is called.
func New(opts Options) *Host {
	if opts.Builtins == nil {
		opts.Builtins = noBuiltins{}
	}
	return &Host{opts: opts, plugins: map[string]*entry{}}
}

// Provider returns the named plugin's provider, starting its process on the
// first call. The same provider is returned for the whole life of the Host.
func (h *Host) Provider(ctx context.Context, name string) (sdk.Provider, error) {
	e, err := h.entry(ctx, name)
	if err != nil {
		return nil, err
	}
	return e.provider, nil
}

func (h *Host) entry(ctx context.Context, name string) (*entry, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("plugin host is closed")
	}
	e, ok := h.plugins[name]
	if !ok {
		e = &entry{}
		h.plugins[name] = e
	}
	h.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started {
		if err := h.start(ctx, name, e); err != nil {
			e.provider, e.closer = nil, nil
			return nil, err
		}
		e.started = true
	}
	return e, nil
}

// start launches (or wires) plugin name and fetches its schema.
func (h *Host) start(ctx context.Context, name string, e *entry) error {
	if p, ok := h.opts.Extra[name]; ok {
		e.provider = p
	} else if err := h.launch(ctx, name, e); err != nil {
		return err
	}
	s, err := e.provider.Schema(ctx)
	if err != nil {
		if e.closer != nil {
			e.closer(true)
		}
		return fmt.Errorf("plugin %s: get schema: %w", name, err)
	}
	if own := h.ownSchema(name); own != nil && e.builtinProc {
		if err := sameSchema(own, s); err != nil {
			if e.closer != nil {
				e.closer(true)
			}
			return fmt.Errorf("plugin %s: %w", name, err)
		}
	}
	e.schema = s
	if e.version == "" {
		e.version = s.Version
	}
	return nil
}

// launch starts plugin name in-process or as a process.
func (h *Host) launch(ctx context.Context, name string, e *entry) error {
	if p, ok := h.opts.Builtins.Get(name); ok && h.opts.Sources[name] == "" {
		if h.opts.InProcess {
			e.local(p)
			return nil
		}
		return h.launchBuiltin(ctx, name, p, e)
	}
	return h.launchExternal(ctx, name, e)
}

// ActionSchema implements lang.SchemaSource. A builtin's schema is read
// from this binary's own copy of the plugin, so checking a runbook and
// preparing its run do not wait for the plugin's process to start.
func (h *Host) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	if s := h.ownSchema(plugin); s != nil {
		a, ok := s.Action(action)
		return a, ok, nil
	}
	e, err := h.entry(context.Background(), plugin)
	if err != nil {
		return sdk.ActionSchema{}, false, err
	}
	a, ok := e.schema.Action(action)
	return a, ok, nil
}

// ownSchema is the schema of builtin plugin name as this binary has it, or
// nil when name is not a builtin served by this binary (an explicit source
// or an Extra provider replaces it). A builtin runs this binary's own code
// (launchBuiltin), and start checks that the process agrees.
func (h *Host) ownSchema(name string) *sdk.PluginSchema {
	if _, ok := h.opts.Extra[name]; ok || h.opts.Sources[name] != "" {
		return nil
	}
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	if s, ok := h.own[name]; ok {
		return s
	}
	p, ok := h.opts.Builtins.Get(name)
	if !ok {
		return nil
	}
	s := sdk.SchemaOf(p)
	if h.own == nil {
		h.own = map[string]*sdk.PluginSchema{}
	}
	h.own[name] = s
	return s
}

// sameSchema reports how a builtin's process disagrees with this binary's
// copy of it: a runbook binary replaced on disk while it runs.
func sameSchema(own, got *sdk.PluginSchema) error {
	const hint = "was the runbook binary replaced while it ran? Run the command again"
	if own.Version != got.Version {
		return fmt.Errorf("the plugin process is version %q, this runbook binary's copy %q: %s", got.Version, own.Version, hint)
	}
	same := len(own.Actions) == len(got.Actions)
	for n := range own.Actions {
		if _, ok := got.Actions[n]; !ok {
			same = false
		}
	}
	if !same {
		return fmt.Errorf("the plugin process has other actions than this runbook binary's copy: %s", hint)
	}
	return nil
}

// Schema returns the named plugin's schema (starting it if needed).
func (h *Host) Schema(ctx context.Context, name string) (*sdk.PluginSchema, error) {
	e, err := h.entry(ctx, name)
	if err != nil {
		return nil, err
	}
	return e.schema, nil
}

// Info returns the version and the sha256 of a plugin: of a builtin
// served by this binary, started or not, the binary's own (checksum ""
// when it runs in-process); of another plugin once started ("", "" before).
func (h *Host) Info(name string) (version, sha256 string) {
	if own := h.ownSchema(name); own != nil {
		// A builtin is this binary's own code: what it is is known without
		// waiting for its process, which may still be starting (the run's
		// metadata is written before the first step).
		if self, err := h.selfExe(); err == nil && self != "" && !h.opts.InProcess {
			return own.Version, h.selfSHA256()
		}
		return own.Version, ""
	}
	h.mu.Lock()
	e, ok := h.plugins[name]
	h.mu.Unlock()
	if !ok {
		return "", ""
	}
	e.mu.Lock()
	version, sha256, builtinProc := e.version, e.sha256, e.builtinProc
	e.mu.Unlock()
	if sha256 == "" && builtinProc {
		sha256 = h.selfSHA256()
	}
	return version, sha256
}

// selfSHA256 is the sha256 of the runbook binary, computed once (launchBuiltin
// starts it in the background, so that it overlaps with the plugin start and
// the run's preparation instead of delaying the journal's creation).
func (h *Host) selfSHA256() string {
	h.selfSumOnce.Do(func() {
		if self, err := h.selfExe(); err == nil && self != "" {
			h.selfSum, _ = cachedFileSHA256(self)
		}
	})
	return h.selfSum
}

// Names lists builtin plugins, Extra providers and the external plugins
// found in the search dirs, sorted and unique.
func (h *Host) Names() []string {
	set := map[string]bool{}
	for _, n := range h.opts.Builtins.Names() {
		set[n] = true
	}
	for n := range h.opts.Extra {
		set[n] = true
	}
	for n := range h.opts.Sources {
		set[n] = true
	}
	for n := range h.discover() {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close kills every plugin process and waits for them to exit. It is safe
// to call more than once.
func (h *Host) Close() error { return h.close(true) }

// CloseNoWait tells every plugin process to exit and returns without
// waiting for them: for a command that ends right after.
func (h *Host) CloseNoWait() error { return h.close(false) }

func (h *Host) close(wait bool) error {
	h.mu.Lock()
	h.closed = true
	ps := h.plugins
	h.plugins = map[string]*entry{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range ps {
		e.mu.Lock()
		f := e.closer
		e.mu.Unlock()
		if f == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); f(wait) }()
	}
	wg.Wait()
	return nil
}

// Prestart starts the named plugins concurrently in the background, so that
// a run does not pay their cold starts one after the other. Errors are not
// kept: the first Provider call for a plugin that failed to start tries
// again and reports the error.
func (h *Host) Prestart(ctx context.Context, names ...string) {
	for _, n := range names {
		go func() { _, _ = h.entry(ctx, n) }()
	}
}

// Alive reports whether the host is open and every plugin process it
// started still answers: a host kept for later runs (a worker's) is
// replaced when one died, rather than failing the next run's first call.
func (h *Host) Alive() bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	es := make([]*entry, 0, len(h.plugins))
	for _, e := range h.plugins {
		es = append(es, e)
	}
	h.mu.Unlock()
	for _, e := range es {
		e.mu.Lock()
		p, ok := e.provider.(*proc)
		started := e.started
		e.mu.Unlock()
		if started && ok && !p.alive() {
			return false
		}
	}
	return true
}

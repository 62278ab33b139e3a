package session

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
)

// LockReport is what LockPlugins did.
type LockReport struct {
	Path    string         // the lock file written (or kept)
	Plugins []LockedPlugin // in name order
	// Refused names the plugins whose binary changed since they were
	// locked (without upgrade); the lock file is then not written.
	Refused []string
}

// LockedPlugin is one plugin pinned in the lock file.
type LockedPlugin struct {
	Name, Version, SHA256 string
	Verb                  string // locked | upgraded | unchanged
}

// LockPlugins finds every external plugin the runbook at path uses (its
// plugin blocks and steps; in a directory without a runbook, every plugin
// found), checks that each one starts and speaks the protocol, and pins
// its version and sha256 in the lock file beside the runbook. A plugin
// locked before with another checksum is refused unless upgrade is set.
func (s *Session) LockPlugins(ctx context.Context, path string, upgrade bool) (*LockReport, error) {
	cfg, diags := lang.Load(path)
	if diags.HasErrors() {
		return nil, &DiagError{Config: cfg, Diags: diags, What: "the runbook has errors"}
	}
	dir := RunbookDir(cfg)
	if st, err := os.Stat(path); err == nil && st.IsDir() && (cfg == nil || len(cfg.Files) == 0) {
		dir = path
	}
	rep := &LockReport{Path: filepath.Join(dir, pluginhost.LockFileName)}
	old, err := pluginhost.ReadLockFile(rep.Path)
	if err != nil {
		return nil, err
	}
	h := pluginhost.New(pluginhost.Options{
		Builtins: s.opts.Builtins, Sources: PluginSources(cfg), AllowUnlocked: true, Stderr: s.stderr,
		Dirs: []string{filepath.Join(dir, DefaultStateDir, "plugins")},
	})
	defer h.Close()
	found := h.Discover()
	names := s.externalPlugins(cfg)
	if len(names) == 0 && (cfg == nil || len(cfg.Files) == 0) {
		for n := range found { // no runbook here: lock every plugin found
			if !s.isBuiltin(n) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
	}
	lf := &pluginhost.LockFile{Plugins: map[string]*pluginhost.LockedPlugin{}}
	for _, name := range names {
		exe, ok := found[name]
		if !ok {
			return nil, fmt.Errorf("plugin %s: %s not found in %s or %s (or set source in a plugin %q block)",
				name, pluginhost.BinaryName(name), filepath.Join(dir, DefaultStateDir, "plugins"), "$XDG_DATA_HOME/runbook/plugins", name)
		}
		lp, verb, err := lockOne(ctx, h, old.Plugin(name), name, exe, upgrade)
		if err != nil {
			return nil, err
		}
		lf.Plugins[name] = lp
		if verb == "" {
			rep.Refused = append(rep.Refused, fmt.Sprintf("plugin %s: %s changed (locked sha256 %s…)", name, exe, lp.SHA256[:16]))
			continue
		}
		if cfg != nil && cfg.Plugins[name] != nil {
			lp.Source = cfg.Plugins[name].Source
		}
		rep.Plugins = append(rep.Plugins, LockedPlugin{Name: name, Version: lp.Version, SHA256: lp.SHA256, Verb: verb})
	}
	if len(rep.Refused) > 0 {
		return rep, nil
	}
	return rep, lf.Write(rep.Path)
}

// lockOne checks one external plugin against its previous pin: verb ""
// (and the previous pin) when its binary changed and upgrade is not set.
func lockOne(ctx context.Context, h *pluginhost.Host, prev *pluginhost.LockedPlugin, name, exe string, upgrade bool) (*pluginhost.LockedPlugin, string, error) {
	sum, err := pluginhost.FileSHA256(exe)
	if err != nil {
		return nil, "", fmt.Errorf("plugin %s: %w", name, err)
	}
	if prev != nil && prev.SHA256 != sum && !upgrade {
		return prev, "", nil
	}
	ps, err := h.Schema(ctx, name)
	if err != nil {
		return nil, "", fmt.Errorf("plugin %s (%s) does not work: %w", name, exe, err)
	}
	verb := "locked"
	if prev != nil && prev.SHA256 != sum {
		verb = "upgraded"
	} else if prev != nil {
		verb = "unchanged"
	}
	return &pluginhost.LockedPlugin{Name: name, Version: ps.Version, SHA256: sum}, verb, nil
}

func (s *Session) isBuiltin(name string) bool {
	if s.opts.Builtins == nil {
		return false
	}
	_, ok := s.opts.Builtins.Get(name)
	return ok
}

// externalPlugins lists the non-builtin plugins a runbook uses, sorted.
func (s *Session) externalPlugins(cfg *lang.Config) []string {
	if cfg == nil {
		return nil
	}
	set := map[string]bool{}
	for n := range cfg.Plugins {
		set[n] = true
	}
	for _, n := range UsedPlugins(cfg) {
		set[n] = true
	}
	var out []string
	for n := range set {
		if !s.isBuiltin(n) && n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

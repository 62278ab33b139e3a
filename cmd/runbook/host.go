package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// openHost builds the plugin host for a loaded runbook: the lock file beside
// the runbook, its plugin blocks (source paths relative to the runbook) and
// RUNBOOK_STATE_DIR for the plugin processes. stderr receives the plugins'
// stderr (pass a masking writer). The caller must Close the host.
func openHost(cfg *lang.Config, stateDir string, stderr io.Writer) (*pluginhost.Host, error) {
	dir := runbookDir(cfg)
	lock, err := pluginhost.ReadLockFile(filepath.Join(dir, pluginhost.LockFileName))
	if err != nil {
		return nil, err
	}
	opts := pluginhost.Options{
		Builtins: builtin.All(),
		Lock:     lock,
		Stderr:   stderr,
		Sources:  pluginSources(cfg, dir),
		Dirs:     []string{filepath.Join(dir, ".runbook", "plugins")},
	}
	if stateDir != "" {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
		opts.Env = append(opts.Env, "RUNBOOK_STATE_DIR="+abs)
	}
	if exe := os.Getenv("RUNBOOK_SELF_EXE"); exe != "" {
		opts.SelfExe = exe
	}
	h := pluginhost.New(opts)
	h.Prestart(context.Background(), usedPlugins(cfg)...)
	return h, nil
}

// usedPlugins lists every plugin the runbook's steps and rollbacks use.
func usedPlugins(cfg *lang.Config) []string {
	if cfg == nil {
		return nil
	}
	set := map[string]bool{}
	for _, st := range cfg.Steps {
		if st == nil {
			continue
		}
		set[st.Plugin] = true
		if st.Rollback != nil && st.Rollback.Plugin != "" {
			set[st.Rollback.Plugin] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		if n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// runbookDir is the runbook's directory ("." if unknown).
func runbookDir(cfg *lang.Config) string {
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

// pluginSources maps plugin names to their `source` paths, made absolute
// relative to the runbook's directory.
func pluginSources(cfg *lang.Config, dir string) map[string]string {
	if cfg == nil {
		return nil
	}
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

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

func init() {
	var upgrade bool
	cmd := &cobra.Command{
		Use:   "init [PATH]",
		Short: "Find the runbook's external plugins and pin their checksums in .runbook.lock.hcl",
		Long: `init finds every external plugin the runbook at PATH (default: the current directory)
uses — from its plugin "NAME" blocks and its steps — in ./.runbook/plugins,
$XDG_DATA_HOME/runbook/plugins or the block's source, checks that each one starts and
speaks the plugin protocol, and records its version and sha256 in .runbook.lock.hcl
beside the runbook. Commit that file: every later run refuses a plugin whose
checksum differs.

A plugin already locked with another checksum is refused unless -upgrade is given.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			return runInit(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), path, upgrade)
		},
	}
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "accept new checksums of plugins already in the lock file")
	rootCmd.AddCommand(cmd)
}

func runInit(ctx context.Context, stdout, stderr io.Writer, path string, upgrade bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, diags := lang.Load(path)
	if diags.HasErrors() {
		if cfg != nil {
			_ = cfg.WriteDiagnostics(stderr, diags, 0, false)
		} else {
			fmt.Fprintln(stderr, diags.Error())
		}
		return withCode(exitError, nil)
	}
	dir := session.RunbookDir(cfg)
	if st, err := os.Stat(path); err == nil && st.IsDir() && (cfg == nil || len(cfg.Files) == 0) {
		dir = path
	}
	lockPath := filepath.Join(dir, pluginhost.LockFileName)
	old, err := pluginhost.ReadLockFile(lockPath)
	if err != nil {
		return err
	}
	sources := session.PluginSources(cfg)
	h := pluginhost.New(pluginhost.Options{
		Builtins:      builtin.All(),
		Sources:       sources,
		Dirs:          []string{filepath.Join(dir, ".runbook", "plugins")},
		AllowUnlocked: true,
		Stderr:        stderr,
	})
	defer h.Close()

	names := externalPlugins(cfg)
	if len(names) == 0 && (cfg == nil || len(cfg.Files) == 0) {
		// No runbook here: lock every plugin found.
		for n := range h.Discover() {
			if _, ok := builtin.Get(n); !ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
	}
	lf := &pluginhost.LockFile{Plugins: map[string]*pluginhost.LockedPlugin{}}
	found := h.Discover()
	var refused []string
	for _, name := range names {
		exe, ok := found[name]
		if !ok {
			return fmt.Errorf("plugin %s: runbook-plugin-%s not found in %s or %s (or set source in a plugin %q block)",
				name, name, filepath.Join(dir, ".runbook", "plugins"), "$XDG_DATA_HOME/runbook/plugins", name)
		}
		sum, err := pluginhost.FileSHA256(exe)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		if prev := old.Plugin(name); prev != nil && prev.SHA256 != sum && !upgrade {
			refused = append(refused, fmt.Sprintf("plugin %s: %s changed (sha256 %s, locked %s)", name, exe, sum[:16], prev.SHA256[:16]))
			lf.Plugins[name] = prev
			continue
		}
		s, err := h.Schema(ctx, name)
		if err != nil {
			return fmt.Errorf("plugin %s (%s) does not work: %w", name, exe, err)
		}
		lp := &pluginhost.LockedPlugin{Name: name, Version: s.Version, SHA256: sum}
		if src := cfgSource(cfg, name); src != "" {
			lp.Source = src
		}
		lf.Plugins[name] = lp
		verb := "locked"
		if prev := old.Plugin(name); prev != nil && prev.SHA256 != sum {
			verb = "upgraded"
		} else if prev != nil {
			verb = "unchanged"
		}
		fmt.Fprintf(stdout, "%s %s %s (sha256 %s…)\n", verb, name, s.Version, sum[:16])
	}
	if len(refused) > 0 {
		for _, r := range refused {
			fmt.Fprintln(stderr, r)
		}
		return fmt.Errorf("%d plugin(s) changed since they were locked; check them, then run `runbook init -upgrade` to accept", len(refused))
	}
	if err := lf.Write(lockPath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d external plugin(s)); commit it.\n", lockPath, len(lf.Plugins))
	return nil
}

// externalPlugins lists the non-builtin plugins a runbook uses, sorted.
func externalPlugins(cfg *lang.Config) []string {
	if cfg == nil {
		return nil
	}
	set := map[string]bool{}
	for n := range cfg.Plugins {
		set[n] = true
	}
	for _, n := range session.UsedPlugins(cfg) {
		set[n] = true
	}
	var out []string
	for n := range set {
		if _, ok := builtin.Get(n); !ok && n != "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func cfgSource(cfg *lang.Config, name string) string {
	if cfg == nil || cfg.Plugins[name] == nil {
		return ""
	}
	return cfg.Plugins[name].Source
}

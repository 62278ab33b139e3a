package pluginhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginclient"
	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/internal/safeenv"
	"github.com/runbookdev/runbook/sdk"
)

// launchBuiltin runs a builtin plugin as `SELF plugin serve NAME`.
func (h *Host) launchBuiltin(ctx context.Context, name string, p *sdk.Plugin, e *entry) error {
	self, err := h.selfExe()
	if err != nil {
		return err
	}
	if self == "" {
		// A test binary cannot serve plugins: run builtins in-process.
		e.local(p)
		return nil
	}
	// Info reports this checksum for the run's metadata: hash the binary
	// while the plugin starts.
	go h.selfSHA256()
	pp := h.newProc(name, self, []string{"plugin", "serve", name})
	e.builtinProc = true
	return h.startProc(ctx, e, pp)
}

// selfExe is the runbook binary, or "" when running inside a Go test
// binary (which has no `plugin serve` command).
//
// Options.SelfExe (RUNBOOK_SELF_EXE) names another binary only for the
// project's tests: a test binary serves builtins from a runbook binary
// built for the test. A runbook binary honours it only when it names that
// binary itself; any other program would run unchecked as every builtin.
func (h *Host) selfExe() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the runbook executable: %w", err)
	}
	test := isTestBinary(self)
	if h.opts.SelfExe != "" {
		if test || sameFile(self, h.opts.SelfExe) {
			return h.opts.SelfExe, nil
		}
		return "", &sdk.Error{
			Kind: sdk.KindInvalid,
			Hint: "unset RUNBOOK_SELF_EXE: it is for runbook's own tests",
			Err:  fmt.Errorf("refusing to run %s as the builtin plugins: it is not this runbook binary (%s)", h.opts.SelfExe, self),
		}
	}
	if test {
		return "", nil
	}
	return self, nil
}

// isTestBinary reports whether exe is a binary built by `go test`.
func isTestBinary(exe string) bool {
	base := strings.TrimSuffix(filepath.Base(exe), ".exe")
	return strings.HasSuffix(base, ".test")
}

// sameFile reports whether a and b name the same file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// launchExternal finds runbook-plugin-NAME, checks it against the lock file
// and starts a private copy of the very bytes checked (see pin).
func (h *Host) launchExternal(ctx context.Context, name string, e *entry) error {
	path, err := h.find(name)
	if err != nil {
		return err
	}
	locked := h.lockEntry(name)
	if locked == nil && !h.opts.AllowUnlocked {
		return &sdk.Error{
			Kind: sdk.KindInvalid,
			Hint: "run `runbook init` to record its checksum in " + LockFileName + " (and commit it)",
			Err:  fmt.Errorf("plugin %s (%s) is not in the lock file %s; run `runbook init` to pin its checksum", name, path, LockFileName),
		}
	}
	pin, err := h.pin(name, path, func(sum string) error {
		if locked != nil && locked.SHA256 != sum {
			return mismatchError(name, path, locked.SHA256, sum)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.sha256 = pin.sha256
	pp := h.newProc(name, pin.exe, nil)
	pp.cleanup, pp.origin = pin.cleanup, path
	if err := h.startProc(ctx, e, pp); err != nil {
		pp.kill(true) // removes a temporary copy
		return err
	}
	return nil
}

func (h *Host) lockEntry(name string) *LockedPlugin {
	if h.opts.Lock == nil {
		return nil
	}
	return h.opts.Lock.Plugins[name]
}

// mismatchError says what changed and how to accept it.
func mismatchError(name, path, want, got string) error {
	return &sdk.Error{
		Kind: sdk.KindInvalid,
		Hint: "if you trust the new binary, run `runbook init -upgrade` to accept it (and commit " + LockFileName + ")",
		Err: fmt.Errorf("plugin %s: %s has changed since it was locked: sha256 is %s, %s expects %s; if you trust the new binary, run `runbook init -upgrade`",
			name, path, short(got), LockFileName, short(want)),
	}
}

func short(sum string) string {
	if len(sum) > 16 {
		return sum[:16] + "…"
	}
	return sum
}

// startProc starts the process and fetches nothing yet; Schema is called by
// the caller.
func (h *Host) startProc(ctx context.Context, e *entry, pp *proc) error {
	if _, err := pp.get(); err != nil {
		return err
	}
	e.provider = pp
	e.closer = pp.kill
	return nil
}

// newProc prepares a plugin process (not started).
func (h *Host) newProc(name, path string, args []string) *proc {
	return &proc{
		name:   name,
		path:   path,
		args:   args,
		env:    h.opts.Env,
		stderr: newStderrWatcher(name, h.opts.Stderr),
	}
}

// find locates the executable of an external plugin.
func (h *Host) find(name string) (string, error) {
	if src, ok := h.opts.Sources[name]; ok {
		st, err := os.Stat(src)
		if err != nil {
			return "", &sdk.Error{Kind: sdk.KindNotFound, Err: fmt.Errorf("plugin %s: source %s: %w", name, src, err)}
		}
		if st.IsDir() {
			src = filepath.Join(src, BinaryName(name))
		}
		return filepath.Abs(src)
	}
	var tried []string
	for _, dir := range h.searchDirs() {
		p := filepath.Join(dir, BinaryName(name))
		tried = append(tried, dir)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return filepath.Abs(p)
		}
	}
	known := h.opts.Builtins.Names()
	return "", &sdk.Error{
		Kind: sdk.KindNotFound,
		Hint: fmt.Sprintf("builtin plugins are %s; install %s in one of the search dirs, or set `source` in a plugin %q block", strings.Join(known, ", "), BinaryName(name), name),
		Err:  fmt.Errorf("plugin %s not found (searched %s)", name, strings.Join(tried, ", ")),
	}
}

// BinaryName is the executable name of an external plugin.
func BinaryName(name string) string { return "runbook-plugin-" + name }

// searchDirs lists the plugin dirs in search order.
func (h *Host) searchDirs() []string {
	dirs := append([]string(nil), h.opts.Dirs...)
	dirs = append(dirs, filepath.Join(".runbook", "plugins"))
	if d := dataDir(); d != "" {
		dirs = append(dirs, filepath.Join(d, "runbook", "plugins"))
	}
	return dirs
}

// dataDir is $XDG_DATA_HOME or ~/.local/share.
func dataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share")
	}
	return ""
}

// discover lists external plugins in the search dirs: name -> path.
func (h *Host) discover() map[string]string {
	out := map[string]string{}
	for _, dir := range h.searchDirs() {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, de := range ents {
			n, ok := strings.CutPrefix(de.Name(), "runbook-plugin-")
			if !ok || de.IsDir() || n == "" {
				continue
			}
			if _, seen := out[n]; !seen {
				out[n] = filepath.Join(dir, de.Name())
			}
		}
	}
	return out
}

// Discover lists the external plugins found in the search dirs and the
// explicit sources: name -> executable path.
func (h *Host) Discover() map[string]string {
	out := h.discover()
	for n := range h.opts.Sources {
		if p, err := h.find(n); err == nil {
			out[n] = p
		}
	}
	return out
}

// clientConfig builds the go-plugin client config of a process.
func (p *proc) clientConfig() *plugin.ClientConfig {
	cmd := exec.Command(p.path, p.args...)
	// The engine's own secrets (state key, variable values) stay in the
	// engine: a plugin gets what its steps give it.
	cmd.Env = append(safeenv.Environ(), p.env...)
	dieWithEngine(cmd)
	return &plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		VersionedPlugins: pluginclient.PluginSets(),
		Cmd:              cmd,
		// cmd.Env is the whole environment: go-plugin would otherwise
		// append the engine's, secrets included.
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Mutual TLS with fresh keys for every launch, each side trusting
		// only the other's certificate: go-plugin's own, well-trodden path.
		AutoMTLS:        true,
		GRPCDialOptions: pluginwire.DialOptions(),
		Stderr:          p.stderr,
		// go-plugin redirects the plugin's os.Stdout/os.Stderr over gRPC;
		// both belong in the run log with the raw stderr.
		SyncStdout: p.stderr,
		SyncStderr: p.stderr,
		// Only go-plugin's "plugin process exited" record is kept, for its
		// exit status.
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: p.stderr.exitWriter(), JSONFormat: true}),
	}
}

package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginclient"
	"github.com/runbookdev/runbook/internal/pluginwire"
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
	pp := h.newProc(name, self, []string{"plugin", "serve", name}, nil)
	e.builtinProc = true
	return h.startProc(ctx, e, pp)
}

// selfExe is the runbook binary, or "" when running inside a Go test
// binary (which has no `plugin serve` command).
func (h *Host) selfExe() (string, error) {
	if h.opts.SelfExe != "" {
		return h.opts.SelfExe, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the runbook executable: %w", err)
	}
	if strings.HasSuffix(self, ".test") {
		return "", nil
	}
	return self, nil
}

// launchExternal finds runbook-plugin-NAME, checks it against the lock file
// and starts it.
func (h *Host) launchExternal(ctx context.Context, name string, e *entry) error {
	path, err := h.find(name)
	if err != nil {
		return err
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	var checksum []byte
	switch locked := h.lockEntry(name); {
	case locked != nil:
		want, _ := hex.DecodeString(locked.SHA256)
		if locked.SHA256 != sum {
			return mismatchError(name, path, locked.SHA256, sum)
		}
		// go-plugin checks the checksum again right before it executes
		// the binary, closing the window between our check and exec.
		checksum = want
	case h.opts.AllowUnlocked:
	default:
		return &sdk.Error{
			Kind: sdk.KindInvalid,
			Hint: "run `runbook init` to record its checksum in " + LockFileName + " (and commit it)",
			Err:  fmt.Errorf("plugin %s (%s) is not in the lock file %s; run `runbook init` to pin its checksum", name, path, LockFileName),
		}
	}
	e.sha256 = sum
	pp := h.newProc(name, path, nil, checksum)
	return h.startProc(ctx, e, pp)
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
func (h *Host) newProc(name, path string, args []string, checksum []byte) *proc {
	return &proc{
		name:     name,
		path:     path,
		args:     args,
		env:      h.opts.Env,
		checksum: checksum,
		stderr:   newStderrWatcher(name, h.opts.Stderr),
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
	cmd.Env = append(os.Environ(), p.env...)
	dieWithEngine(cmd)
	var secure *plugin.SecureConfig
	if p.checksum != nil {
		// A fresh hash each start: SecureConfig.Check writes into it.
		secure = &plugin.SecureConfig{Checksum: p.checksum, Hash: sha256.New()}
	}
	return &plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		VersionedPlugins: pluginclient.PluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Mutual TLS with fresh keys for every launch, each side trusting
		// only the other's certificate: go-plugin's own, well-trodden path.
		AutoMTLS:        true,
		GRPCDialOptions: pluginwire.DialOptions(),
		SecureConfig:    secure,
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

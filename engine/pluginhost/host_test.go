package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// Binaries built once for the whole package run.
var (
	// testPlugin serves `plugin serve NAME` (builtins and "testing") like
	// the runbook binary, and "testing" when run without arguments.
	testPlugin string
	// helloPlugin is examples/plugin-hello.
	helloPlugin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if onlyFuzzing() {
		// No test here needs the plugins: each fuzz worker would build
		// them again.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/runbookdev/runbook/internal/plugintest/testplugin",
		"github.com/runbookdev/runbook/examples/plugin-hello")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Static, like `make build`: the cold-start benchmark measures it.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build test plugins:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	testPlugin = filepath.Join(dir, "testplugin")
	// The private copies of external plugins (Options.PluginCache's
	// default) go to the test's directory, not the user's cache.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	helloPlugin = filepath.Join(dir, "plugin-hello")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// onlyFuzzing reports whether this process runs fuzz inputs only: a fuzz
// worker, or a fuzzing run with -run='^$' (scripts/fuzz.sh).
func onlyFuzzing() bool {
	get := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return get("test.fuzzworker") == "true" || get("test.fuzz") != "" && get("test.run") == "^$"
}

// syncBuffer is a goroutine-safe bytes.Buffer for Options.Stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHost(t testing.TB, opts Options) *Host {
	t.Helper()
	if opts.Builtins == nil {
		opts.Builtins = builtin.All()
	}
	if opts.SelfExe == "" {
		opts.SelfExe = testPlugin
	}
	h := New(opts)
	t.Cleanup(func() { h.Close() })
	return h
}

func provider(t testing.TB, h *Host, name string) sdk.Provider {
	t.Helper()
	p, err := h.Provider(context.Background(), name)
	if err != nil {
		t.Fatalf("provider %s: %v", name, err)
	}
	return p
}

// pidOf returns the pid of a started plugin process.
func pidOf(t testing.TB, h *Host, name string) int {
	t.Helper()
	h.mu.Lock()
	e := h.plugins[name]
	h.mu.Unlock()
	p, ok := e.provider.(*proc)
	if !ok {
		t.Fatalf("plugin %s runs in-process (%T)", name, e.provider)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rc := p.client.ReattachConfig()
	if rc == nil {
		t.Fatalf("plugin %s: no reattach config", name)
	}
	return rc.Pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestBuiltinRunsOutOfProcessAndIsReused(t *testing.T) {
	h := newHost(t, Options{})
	p := provider(t, h, "core")
	pid := pidOf(t, h, "core")
	if pid == os.Getpid() || !alive(pid) {
		t.Fatalf("core pid %d is not a live child", pid)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := cty.ObjectVal(map[string]cty.Value{"values": cty.NumberIntVal(int64(i))})
			res, _, err := sdktest.Apply(t, p, "noop", in)
			if err != nil {
				t.Errorf("noop: %v", err)
				return
			}
			if got := res.Outputs.GetAttr("values"); !got.RawEquals(cty.NumberIntVal(int64(i))) {
				t.Errorf("noop values = %#v", got)
			}
		}()
	}
	wg.Wait()
	if p2 := provider(t, h, "core"); p2 != p || pidOf(t, h, "core") != pid {
		t.Fatalf("second Provider call started another process")
	}
	s, ok, err := h.ActionSchema("core", "exec")
	if err != nil || !ok || s.Input("command") == nil || !s.Input("command").Required {
		t.Fatalf("ActionSchema(core, exec) = %+v, %v, %v", s, ok, err)
	}
	if _, ok, err := h.ActionSchema("core", "nope"); ok || err != nil {
		t.Fatalf("ActionSchema(core, nope) = %v, %v", ok, err)
	}
	want, _ := FileSHA256(testPlugin)
	if v, sum := h.Info("core"); v == "" || sum != want {
		t.Fatalf("Info(core) = %q, %q; want a version and %s", v, sum, want)
	}
	h.Close()
	waitDead(t, pid)
	if _, err := h.Provider(context.Background(), "core"); err == nil {
		t.Fatalf("Provider after Close succeeded")
	}
}

// CloseNoWait returns before the plugin is gone, and the plugin exits by
// itself right after.
func TestCloseNoWait(t *testing.T) {
	h := newHost(t, Options{})
	p := provider(t, h, "core")
	if _, _, err := sdktest.Apply(t, p, "noop", cty.ObjectVal(map[string]cty.Value{"values": cty.True})); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h, "core")
	h.CloseNoWait()
	waitDead(t, pid)
	if _, err := h.Provider(context.Background(), "core"); err == nil {
		t.Fatalf("Provider after CloseNoWait succeeded")
	}
}

func waitDead(t testing.TB, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) {
			return
		}
		// Reap if it is our zombie child.
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
	t.Fatalf("plugin process %d still alive", pid)
}

func TestEnvAndStderr(t *testing.T) {
	var stderr syncBuffer
	h := newHost(t, Options{Env: []string{"RUNBOOK_STATE_DIR=/some/state"}, Stderr: &stderr})
	p := provider(t, h, "core")
	res, _, err := sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{
		"command": "sh",
		"args":    []string{"-c", `echo "$RUNBOOK_STATE_DIR"`},
	}))
	if err != nil {
		t.Fatal(err)
	}
	sdktest.AssertOutput(t, res, "stdout", cty.StringVal("/some/state\n"))
	// A failing command reports the tail of its stderr.
	_, _, err = sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{
		"command": "sh",
		"args":    []string{"-c", "echo boom >&2; exit 3"},
	}))
	if err == nil || !strings.Contains(err.Error(), "exited with status 3: boom") {
		t.Fatalf("exec failure = %v", err)
	}
}

func TestInProcessOption(t *testing.T) {
	h := newHost(t, Options{InProcess: true, SelfExe: "/nonexistent"})
	p := provider(t, h, "core")
	if _, ok := p.(*proc); ok {
		t.Fatalf("InProcess host started a process")
	}
	sdktest.MustApply(t, p, "noop", cty.EmptyObjectVal)
}

func TestExtraProviders(t *testing.T) {
	extra := sdk.Local(&sdk.Plugin{Name: "x", Version: "9"})
	h := newHost(t, Options{Extra: map[string]sdk.Provider{"x": extra}})
	if p := provider(t, h, "x"); p != extra {
		t.Fatalf("Extra provider not used")
	}
	if v, _ := h.Info("x"); v != "9" {
		t.Fatalf("Info(x) version = %q", v)
	}
}

// installExternal copies the test plugin as runbook-plugin-testing into a
// fresh dir and returns the dir and its sha256.
func installExternal(t testing.TB) (dir, sum string) {
	t.Helper()
	dir = t.TempDir()
	// Whatever the umask: plugins in group-writable directories are refused.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, BinaryName("testing"))
	if os.Link(testPlugin, dst) != nil {
		b, err := os.ReadFile(testPlugin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := FileSHA256(dst)
	if err != nil {
		t.Fatal(err)
	}
	return dir, sum
}

func lockOf(name, sum string) *LockFile {
	return &LockFile{Plugins: map[string]*LockedPlugin{name: {Name: name, SHA256: sum}}}
}

func TestExternalPluginLocked(t *testing.T) {
	dir, sum := installExternal(t)
	h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum)})
	p := provider(t, h, "testing")
	res, _ := sdktest.MustApply(t, p, "echo", sdktest.Object(map[string]any{"s": "hi"}))
	sdktest.AssertOutput(t, res, "s", cty.StringVal("hi"))
	v, gotSum := h.Info("testing")
	if v != "1.2.3" || gotSum != sum {
		t.Fatalf("Info = %q, %q; want 1.2.3, %s", v, gotSum, sum)
	}
	if names := h.Names(); !contains(names, "testing") || !contains(names, "core") {
		t.Fatalf("Names() = %v", names)
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func TestExternalPluginRefusals(t *testing.T) {
	dir, sum := installExternal(t)
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"unlocked", Options{Dirs: []string{dir}}, []string{"not in the lock file", "runbook init"}},
		{"mismatch", Options{Dirs: []string{dir}, Lock: lockOf("testing", strings.Repeat("ab", 32))},
			[]string{"has changed since it was locked", "sha256 is " + sum[:16], "expects abababab", "runbook init -upgrade"}},
		{"missing", Options{Dirs: []string{t.TempDir()}}, []string{"plugin testing not found", "runbook-plugin-testing"}},
		{"bad source", Options{Sources: map[string]string{"testing": "/nonexistent/x"}}, []string{"source /nonexistent/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, tt.opts)
			_, err := h.Provider(context.Background(), "testing")
			if err == nil {
				t.Fatal("plugin started")
			}
			e := sdk.Classify(err)
			msg := err.Error() + " / hint: " + e.Hint
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestCrashMapping(t *testing.T) {
	var stderr syncBuffer
	h := newHost(t, Options{
		Sources:       map[string]string{"hello": helloPlugin},
		AllowUnlocked: true,
		Stderr:        &stderr,
	})
	p := provider(t, h, "hello")
	tests := []struct {
		how  string
		want string
	}{
		{"goroutine", "plugin hello crashed: panic: boom goroutine"},
		{"panic", "plugin hello crashed in crash: panic: boom panic"},
		{"exit", "plugin hello exited unexpectedly (exit status 3)"},
	}
	for _, tt := range tests {
		t.Run(tt.how, func(t *testing.T) {
			_, _, err := sdktest.Apply(t, p, "crash", sdktest.Object(map[string]any{"how": tt.how, "message": "boom " + tt.how}))
			var e *sdk.Error
			if !errors.As(err, &e) || e.Kind != sdk.KindInternal {
				t.Fatalf("err = %T %v, want an internal *sdk.Error", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.want)
			}
			// The next call gets a working plugin again.
			res, _ := sdktest.MustApply(t, p, "greet", sdktest.Object(map[string]any{"name": "Ada"}))
			sdktest.AssertOutput(t, res, "message", cty.StringVal("Hello, Ada!"))
		})
	}
	if !strings.Contains(stderr.String(), "hello: panic: boom goroutine") {
		t.Fatalf("plugin stderr not forwarded:\n%s", stderr.String())
	}
}

func TestCancelMidApply(t *testing.T) {
	dir, sum := installExternal(t)
	h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum)})
	p := provider(t, h, "testing")
	res, rec, _ := sdktest.ApplyCancelled(t, p, "slow", cty.ObjectVal(map[string]cty.Value{"duration": cty.StringVal("1m")}), 5*time.Second)
	if res == nil || string(res.UndoState) != "partial" {
		t.Fatalf("partial result lost: %+v", res)
	}
	if diff := cmp.Diff([]string{"started"}, rec.Logs()); diff != "" {
		t.Fatalf("logs (-want +got):\n%s", diff)
	}
	// The process is still usable; events and checkpoints stream through
	// the host, and the checkpoint's ack reaches the plugin.
	res, rec, err := sdktest.ApplyRequest(t, p, "events", &sdk.ApplyRequest{
		Inputs:         sdktest.Object(map[string]any{"count": 2}),
		IdempotencyKey: "r/s/1",
		Checkpoint:     []byte("prev"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{[]byte("cp1"), []byte("cp2")}, rec.Checkpoints()); diff != "" {
		t.Fatalf("checkpoints (-want +got):\n%s", diff)
	}
	sdktest.AssertOutput(t, res, "resumed_from", cty.StringVal("prev|r/s/1"))
	if len(rec.ProgressEvents()) != 2 || len(rec.Logs()) != 2 {
		t.Fatalf("events = %+v", rec.Events())
	}
}

func TestDiscovery(t *testing.T) {
	dir, _ := installExternal(t)
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "runbook", "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "runbook", "plugins", BinaryName("other")), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_DATA_HOME", data)
	h := New(Options{Builtins: builtin.All(), Dirs: []string{dir}})
	got := h.Discover()
	want := map[string]string{
		"testing": filepath.Join(dir, BinaryName("testing")),
		"other":   filepath.Join(data, "runbook", "plugins", BinaryName("other")),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Discover (-want +got):\n%s", diff)
	}
}

func TestLockFileRoundTrip(t *testing.T) {
	lf := &LockFile{Plugins: map[string]*LockedPlugin{
		"b": {Name: "b", Version: "1.0.0", SHA256: strings.Repeat("0", 64)},
		"a": {Name: "a", SHA256: strings.Repeat("f", 64), Source: "./bin/runbook-plugin-a"},
	}}
	path := filepath.Join(t.TempDir(), LockFileName)
	if err := lf.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lf, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "# ") || strings.Index(string(b), `plugin "a"`) > strings.Index(string(b), `plugin "b"`) {
		t.Fatalf("lock file not sorted or missing header:\n%s", b)
	}
	if lf, err := ReadLockFile(filepath.Join(t.TempDir(), "none")); lf != nil || err != nil {
		t.Fatalf("missing lock file = %v, %v", lf, err)
	}
	for _, bad := range []string{
		`plugin "a" { sha256 = "xyz" }`,
		`plugin "a" { sha256 = "` + strings.Repeat("0", 64) + `" }` + "\n" + `plugin "a" { sha256 = "` + strings.Repeat("0", 64) + `" }`,
		`plugin "a" {`,
	} {
		if _, err := ParseLockFile("x.hcl", []byte(bad)); err == nil {
			t.Errorf("ParseLockFile(%q) succeeded", bad)
		}
	}
}

// TestPluginEnvHoldsNoEngineSecret: the state key and the variables'
// values (RUNBOOK_VAR_*) in the engine's environment do not reach a plugin
// process; the rest of the environment and Options.Env do.
func TestPluginEnvHoldsNoEngineSecret(t *testing.T) {
	t.Setenv("RUNBOOK_STATE_KEY", "canary-state-key")
	t.Setenv("RUNBOOK_STATE_KEY_FILE", "/canary/key/file")
	t.Setenv("RUNBOOK_VAR_pw", "canary-var-pw")
	t.Setenv("PLUGINHOST_KEPT", "kept")
	h := newHost(t, Options{Env: []string{"RUNBOOK_STATE_DIR=/some/state"}})
	provider(t, h, "core")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pidOf(t, h, "core")))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	env := string(b)
	for _, leak := range []string{"canary-state-key", "/canary/key/file", "canary-var-pw"} {
		if strings.Contains(env, leak) {
			t.Errorf("plugin environment holds %q", leak)
		}
	}
	for _, kept := range []string{"PLUGINHOST_KEPT=kept", "RUNBOOK_STATE_DIR=/some/state", "PATH="} {
		if !strings.Contains(env, kept) {
			t.Errorf("plugin environment lacks %q", kept)
		}
	}
}

package pluginhost

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// startedEvents signals the first log of an action.
type startedEvents struct {
	sdk.NopEvents
	started chan struct{}
}

func (e startedEvents) Log(sdk.Level, string) {
	select {
	case e.started <- struct{}{}:
	default:
	}
}

// A plugin killed by a signal is reported as killed, by which signal, not
// as a bug in the plugin.
func TestKilledPluginMessage(t *testing.T) {
	dir, sum := installExternal(t)
	h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum)})
	p := provider(t, h, "testing")
	pid := pidOf(t, h, "testing")
	ev := startedEvents{started: make(chan struct{}, 1)}
	errc := make(chan error, 1)
	go func() {
		_, err := p.Apply(context.Background(), "slow", &sdk.ApplyRequest{
			Inputs: cty.ObjectVal(map[string]cty.Value{"duration": cty.StringVal("1m"), "ignore_cancel": cty.NullVal(cty.Bool)}),
		}, ev)
		errc <- err
	}()
	<-ev.started
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "plugin testing was killed by signal SIGKILL (killed)") {
		t.Fatalf("err = %v", err)
	}
	if hint := sdk.Classify(err).Hint; strings.Contains(hint, "bug") || !strings.Contains(hint, "killed it") {
		t.Errorf("hint = %q", hint)
	}
}

func TestLockFileCheck(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	lf := lockOf("x", a)
	errString := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	got := []string{errString(lf.Check("x", a)), errString(lf.Check("y", a)), errString((*LockFile)(nil).Check("x", a)), errString(lf.Check("x", b))}
	want := []string{"", "not locked: run `runbook init`", "not locked: run `runbook init`",
		"checksum mismatch: .runbook.lock.hcl has sha256 aaaaaaaaaaaaaaaa…, the binary found is bbbbbbbbbbbbbbbb…; if you trust it, run `runbook init -upgrade`"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A plugin that cannot start says so and why, as an internal error (not
// "not found"): callers tell it from an unknown plugin by its kind.
func TestStartFailureMessage(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, BinaryName("broken"))
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho 'cannot read config' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, Options{Dirs: []string{dir}, AllowUnlocked: true, PluginCache: t.TempDir()})
	_, err := h.Provider(context.Background(), "broken")
	if e := sdk.Classify(err); e == nil || e.Kind != sdk.KindInternal {
		t.Fatalf("err = %v, want an internal error", err)
	}
	if !strings.Contains(err.Error(), "plugin broken could not be started") || !strings.Contains(err.Error(), "stderr: cannot read config") {
		t.Fatalf("err = %v", err)
	}
	if hint := sdk.Classify(err).Hint; !strings.Contains(hint, "check that "+exe+" is a runbook plugin") {
		t.Errorf("hint = %q, want the plugin's own path", hint)
	}
	_, err = h.Provider(context.Background(), "missing")
	if e := sdk.Classify(err); e.Kind != sdk.KindNotFound {
		t.Fatalf("missing plugin: err = %v (kind %v)", err, e.Kind)
	}
}

// Alive is true while every started plugin answers, false at once after
// one was killed (before go-plugin notices), and false once closed.
func TestAliveAfterKill(t *testing.T) {
	dir, sum := installExternal(t)
	h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum)})
	if !h.Alive() {
		t.Fatal("a host with nothing started is not alive")
	}
	provider(t, h, "testing")
	if !h.Alive() {
		t.Fatal("a host whose plugin runs is not alive")
	}
	if err := syscall.Kill(pidOf(t, h, "testing"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if h.Alive() {
		t.Error("a host whose plugin was killed is alive")
	}
	h.Close()
	if h.Alive() {
		t.Error("a closed host is alive")
	}
}

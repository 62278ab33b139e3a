package session

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// pluginPIDs lists this process's children serving plugin name.
func pluginPIDs(t *testing.T, name string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.HasSuffix(string(cmd), "\x00plugin\x00serve\x00"+name+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// Runs of one runbook given a HostPool share the plugin processes; a
// plugin process that died is started again by the next run; closing the
// pool stops them.
func TestHostPoolReusesPluginProcesses(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), `
runbook "pooled" { lock = "pooled-${var.n}" }
variable "n" { type = string }
step "core.noop" "a" { with = { values = var.n } }
step "core.noop" "b" { depends_on = [step.a] }
`)
	pool := NewHostPool()
	defer pool.Close()
	apply := func(n int) []int {
		t.Helper()
		s, err := New(Options{
			StateDir: filepath.Join(dir, ".runbook"), Builtins: builtin.All(), Hosts: pool, Sink: event.Discard,
			Getenv: selfExeEnv})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rb, err := s.Open(vars("n="+strconv.Itoa(n)), dir)
		if err != nil {
			t.Fatal(err)
		}
		out, err := rb.Apply(context.Background(), nil)
		pids := pluginPIDs(t, "core")
		rb.Close()
		if err != nil {
			t.Fatalf("run %d: %v", n, err)
		}
		if out.Result.State != "succeeded" {
			t.Fatalf("run %d ended %s: %v", n, out.Result.State, out.Result.Err)
		}
		if len(pids) != 1 {
			t.Fatalf("run %d: core plugin processes %v, want one", n, pids)
		}
		return pids
	}
	first := apply(1)
	if second := apply(2); second[0] != first[0] {
		t.Errorf("the second run started core again: pid %d, then %d", first[0], second[0])
	}
	if err := syscall.Kill(first[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(pluginPIDs(t, "core")) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	third := apply(3)
	if third[0] == first[0] {
		t.Errorf("a killed plugin's pid %d still serves", first[0])
	}
	pool.Close()
	if left := pluginPIDs(t, "core"); len(left) > 0 {
		t.Errorf("plugin processes left after the pool's Close: %v", left)
	}
}

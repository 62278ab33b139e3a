package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The engine may die at any moment (kill -9, a second Ctrl-C). Its plugin
// processes, and the commands they run, must not live on and keep changing
// things behind the back of the resume or rollback that follows.

// longStep runs a command that writes its pid to pid.txt (once: with
// done.txt present it exits at once, so that resume finishes).
const longStep = `
step "core.exec" "long" {
  with = {
    command = "sh"
    args = ["-c", <<-EOT
      if [ -e done.txt ]; then exit 0; fi
      touch done.txt
      trap '' TERM
      echo $$ > pid.txt
      sleep 60 & wait; wait
    EOT
    ]
  }
}
`

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// pluginProcs lists the live `plugin serve` processes of this test's binary.
func pluginProcs() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.HasPrefix(cmd, []byte(bin+"\x00plugin\x00serve")) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// startLong starts `apply` of longStep and waits for the command to run.
func startLong(t *testing.T) (cmd *exec.Cmd, dir string, pid int, stderr *bytes.Buffer) {
	t.Helper()
	dir = t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), longStep)
	cmd = exec.Command(bin, "apply", "-auto-approve", "main.hcl")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "pid.txt"))
		if pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); pid != 0 {
			return cmd, dir, pid, stderr
		}
	}
	cmd.Process.Kill()
	t.Fatal("the step's command did not start")
	return
}

// assertGone waits for the command and every plugin process to be gone.
func assertGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && (alive(pid) || len(pluginProcs()) > 0) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(-pid, syscall.SIGKILL)
		t.Errorf("the step's command (pid %d) outlived the engine", pid)
	}
	if left := pluginProcs(); len(left) > 0 {
		for _, p := range left {
			syscall.Kill(p, syscall.SIGKILL)
		}
		t.Errorf("plugin processes %v outlived the engine", left)
	}
}

func TestPluginsDieWithEngine(t *testing.T) {
	if len(pluginProcs()) > 0 {
		t.Fatal("plugin processes of this binary are already running")
	}
	cmd, dir, pid, _ := startLong(t)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// The command ignores SIGTERM: it goes with core.exec's SIGKILL 5 s
	// after the plugin cancelled it.
	assertGone(t, pid, 10*time.Second)
	r := runbook(t, dir, nil, "resume")
	if r.code != 0 || !strings.Contains(r.stdout, "long: done") {
		t.Fatalf("resume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// The first Ctrl-C waits for running steps; the second exits at once,
// leaving the run resumable.
func TestSecondInterrupt(t *testing.T) {
	cmd, dir, pid, stderr := startLong(t)
	cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	if cmd.ProcessState != nil {
		t.Fatal("the first interrupt ended the engine at once")
	}
	second := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if took := time.Since(second); took > 2*time.Second {
		t.Fatalf("the second interrupt took %s to end the engine", took)
	}
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 4 || !strings.Contains(stderr.String(), "Second interrupt") || !strings.Contains(stderr.String(), "runbook resume") {
		t.Fatalf("exit %d (want 4), stderr:\n%s", code, stderr.String())
	}
	assertGone(t, pid, 10*time.Second)
	r := runbook(t, dir, nil, "resume")
	if r.code != 0 || !strings.Contains(r.stdout, "long: done") {
		t.Fatalf("resume: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

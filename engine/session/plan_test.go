package session

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/plugins/builtin"
)

// lockedBuffer is a bytes.Buffer safe for the host's stderr goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPlanMasksPluginStderr: plugins see sensitive inputs while planning;
// what they print on stderr is masked as during a run. The external test
// plugin is pinned with LockPlugins, as `runbook init` does.
func TestPlanMasksPluginStderr(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, DefaultStateDir, "plugins", "runbook-plugin-testing")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/runbookdev/runbook/internal/plugintest/testplugin").CombinedOutput(); err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, out)
	}
	write(t, filepath.Join(dir, "main.hcl"), `
variable "pw" {
  type      = string
  sensitive = true
}
step "testing.echo" "a" {
  with = { s = "pw is ${var.pw}" }
}
`)
	var stderr lockedBuffer
	s, err := New(Options{Stderr: &stderr, Builtins: builtin.All()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.LockPlugins(context.Background(), dir, false)
	if err != nil || len(rep.Plugins) != 1 || rep.Plugins[0].Name != "testing" || rep.Plugins[0].Verb != "locked" {
		t.Fatalf("LockPlugins = %+v, %v", rep, err)
	}
	const canary = "canary-Secret-42"
	rb, err := s.Open(vars("pw="+canary), dir)
	if err != nil {
		fatal(t, err)
	}
	p, err := rb.Plan(context.Background())
	if err != nil {
		fatal(t, err)
	}
	var text strings.Builder
	p.WriteText(&text)
	// The plugin's stderr arrives through go-plugin's stdio stream, which
	// closing the host does not drain: wait for the line.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "echo plan: s=") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	rb.Host.Close()
	s.Close()
	got := stderr.String()
	if !strings.Contains(got, "echo plan: s=pw is ") {
		t.Fatalf("the plugin's stderr did not come through: %q", got)
	}
	if strings.Contains(got, canary) || strings.Contains(text.String(), canary) {
		t.Fatalf("the secret leaked while planning:\nstderr: %s\nplan: %s", got, text.String())
	}
}

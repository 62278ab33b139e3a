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
variable "phrase" {
  type      = string
  sensitive = true
}
# A line longer than the host keeps (64 KiB) is cut at its start, here
# inside the second word of the phrase.
step "testing.echo" "b" {
  with = { s = "${var.phrase} ${replace(format("%65517s", ""), " ", "y")}" }
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
	const phrase = "correct horse battery staple"
	rb, err := s.Open(vars("pw="+canary, "phrase="+phrase), dir)
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
	for deadline := time.Now().Add(10 * time.Second); !(strings.Contains(stderr.String(), "echo plan: s=pw") && strings.Contains(stderr.String(), "[line cut")) && time.Now().Before(deadline); {
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
	// The cut fell inside the phrase: what is left of it is dropped too.
	if !strings.Contains(got, "[line cut: first ") {
		t.Fatalf("the long line was not cut where expected: %.300q", got)
	}
	for _, w := range strings.Fields(phrase) {
		if strings.Contains(got, w) || strings.Contains(text.String(), w) {
			t.Fatalf("%q of a secret cut by the stderr line limit leaked: %.300q", w, got)
		}
	}
}

package session

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/pluginhost"
)

// A pooled host's stderr goes to the current run's output only, masked
// with the secrets of every run the host served: a line a plugin prints
// late about run A's secret does not show it in run B's output.
func TestPooledHostStderrMasksEveryRunsSecrets(t *testing.T) {
	w := &hostStderr{}
	mA, mB := mask.New(), mask.New()
	mA.Add("secret-of-run-a")
	mB.Add("secret-of-run-b")
	var outA, outB bytes.Buffer
	w.attach(mA, mA.Writer(&outA))
	w.Write([]byte("core: A says secret-of-run-a\n"))
	w.detach()
	w.Write([]byte("core: between runs secret-of-run-a\n"))
	w.attach(mB, mB.Writer(&outB))
	w.Write([]byte("core: late secret-of-run-a and secret-of-run-b\n"))
	if got := outA.String(); strings.Contains(got, "secret-of") || !strings.Contains(got, "A says") {
		t.Errorf("run A's output = %q", got)
	}
	got := outB.String()
	if strings.Contains(got, "secret-of") || !strings.Contains(got, "late") {
		t.Errorf("run B's output = %q, want every secret masked", got)
	}
	if strings.Contains(got, "between runs") || strings.Contains(got, "A says") {
		t.Errorf("run B's output holds other runs' lines: %q", got)
	}
	// A line cut in the middle of run A's secret drops its end in run B.
	if n := w.TailLen([]byte("run-a rest")); n != len("run-a") {
		t.Errorf("TailLen = %d, want %d", n, len("run-a"))
	}
}

// The pool keeps a host per runbook and plugin environment: another lock
// file or state directory gets another host.
func TestHostPoolKeys(t *testing.T) {
	p := NewHostPool()
	defer p.Close()
	m := mask.New()
	a := p.get("k1", m, nil, newTestHost)
	p.put(a)
	if b := p.get("k1", m, nil, newTestHost); b != a {
		t.Error("the same runbook got a new host")
	} else {
		c := p.get("k1", m, nil, newTestHost)
		if c == a {
			t.Error("a host in use was handed out twice")
		}
		p.put(c)
		p.put(b)
	}
	if d := p.get("k2", m, nil, newTestHost); d == a {
		t.Error("another runbook got the same host")
	}
	x := p.get("k1", m, nil, newTestHost)
	x.uses = poolUsesMax
	p.put(x)
	for _, ph := range p.idle["k1"] {
		if ph == x {
			t.Error("a host past poolUsesMax was kept")
		}
	}
}

func newTestHost(stderr io.Writer) *pluginhost.Host {
	return pluginhost.New(pluginhost.Options{Stderr: stderr})
}

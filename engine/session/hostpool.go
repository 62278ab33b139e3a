package session

import (
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/pluginhost"
)

// Limits of a HostPool.
const (
	// poolIdleMax is how many idle hosts a pool keeps per runbook; more
	// are closed when given back.
	poolIdleMax = 8
	// poolUsesMax is how many runs a host serves before it is closed: its
	// stderr is masked with the secrets of every run it served, and that
	// list must not grow forever.
	poolUsesMax = 100
)

// HostPool keeps the plugin hosts of finished runs, their plugin processes
// started, for the next runs of the same runbook (Options.Hosts): a worker
// running many small runs does not start every plugin again for each. A
// host serves one run at a time. It is safe for concurrent use; Close it
// when done (a worker's stop).
type HostPool struct {
	mu     sync.Mutex
	idle   map[string][]*pooledHost // by poolKey
	closed bool
}

// NewHostPool returns an empty pool.
func NewHostPool() *HostPool { return &HostPool{idle: map[string][]*pooledHost{}} }

// pooledHost is a host of the pool with the stderr it writes to.
type pooledHost struct {
	h    *pluginhost.Host
	key  string
	out  *hostStderr
	uses int
}

// Close closes the idle hosts; a host in use is closed when given back.
func (p *HostPool) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = map[string][]*pooledHost{}
	p.mu.Unlock()
	for _, hs := range idle {
		for _, ph := range hs {
			ph.h.Close()
		}
	}
}

// get hands out an idle host for key, or one newHost builds, its stderr
// going to out masked with m (and with the secrets of every earlier run
// the host served).
func (p *HostPool) get(key string, m *mask.Masker, out io.Writer, newHost func(stderr io.Writer) *pluginhost.Host) *pooledHost {
	p.mu.Lock()
	var ph *pooledHost
	if hs := p.idle[key]; len(hs) > 0 {
		ph = hs[len(hs)-1]
		p.idle[key] = hs[:len(hs)-1]
	}
	p.mu.Unlock()
	if ph != nil && !ph.h.Alive() {
		// A plugin process died since: a new host starts them all again.
		ph.h.CloseNoWait()
		ph = nil
	}
	if ph == nil {
		ph = &pooledHost{key: key, out: &hostStderr{}}
		ph.h = newHost(ph.out)
	}
	ph.uses++
	ph.out.attach(m, out)
	return ph
}

// put takes a host back once its run is over (every call returned).
func (p *HostPool) put(ph *pooledHost) {
	ph.out.detach()
	p.mu.Lock()
	keep := !p.closed && ph.uses < poolUsesMax && len(p.idle[ph.key]) < poolIdleMax
	if keep {
		p.idle[ph.key] = append(p.idle[ph.key], ph)
	}
	p.mu.Unlock()
	if !keep {
		ph.h.CloseNoWait()
	}
}

// hostStderr is a pooled host's plugin stderr: the current run's masked
// stderr, each line masked first with the secrets of every run the host
// served, so that what a plugin prints late about an earlier run's secret
// is masked in a later run's output too. Between runs lines are dropped.
type hostStderr struct {
	mu   sync.Mutex
	cur  io.Writer      // nil between runs
	seen []*mask.Masker // the maskers of the runs served, current included
}

func (w *hostStderr) attach(m *mask.Masker, out io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = out
	for _, s := range w.seen {
		if s == m {
			return
		}
	}
	w.seen = append(w.seen, m)
}

func (w *hostStderr) detach() {
	w.mu.Lock()
	w.cur = nil
	w.mu.Unlock()
}

// Write masks one line (the plugin host writes whole lines) and passes it
// on.
func (w *hostStderr) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return len(b), nil
	}
	out := b
	for _, m := range w.seen {
		out = m.MaskBytes(out)
	}
	if _, err := w.cur.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// TailLen is the longest end of a known secret b begins with, over every
// run served (see mask.Masker.TailLen): the plugin host drops it from a
// line it cuts.
func (w *hostStderr) TailLen(b []byte) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.seen {
		n = max(n, m.TailLen(b))
	}
	return n
}

// poolKey identifies what a host was built from: the runbook's directory,
// its lock file's content, the plugins' sources, the plugins' environment
// and the runbook binary.
func poolKey(dir string, opts pluginhost.Options) string {
	var lock []byte
	if opts.Lock != nil {
		lock = opts.Lock.Bytes()
	}
	srcs := make([]string, 0, len(opts.Sources))
	for n, p := range opts.Sources {
		srcs = append(srcs, n+"="+p)
	}
	sort.Strings(srcs)
	abs, _ := filepath.Abs(dir)
	parts := []string{abs, string(lock), strings.Join(srcs, "\x01"), strings.Join(opts.Env, "\x01"),
		opts.SelfExe, strings.Join(opts.Dirs, "\x01")}
	return strings.Join(parts, "\x00")
}

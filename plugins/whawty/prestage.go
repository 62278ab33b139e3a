package whawty

import (
	"bytes"
	"context"
	"path"
	"sync"
)

// prestager stages source files that differ from the destination while
// the source is still being read (a remote source streams its files for a
// while): by the time the plan is known, most of its writes are already in
// the destination's .tmp/. Nothing visible changes; apply uses the staged
// files whose content is what the plan writes and removes the others.
//
// Only Apply uses one (Plan writes nothing).
type prestager struct {
	ctx   context.Context
	in    chan preItem
	ready chan struct{} // closed by setDestination
	wg    sync.WaitGroup

	// Set once before ready is closed; read-only afterwards.
	fsys  fileSystem
	tmp   string
	dst   *storeScan
	owner [2]int
	on    bool // false: the destination has no .tmp/ yet; stage nothing

	mu     sync.Mutex         // guards staged
	staged map[string]preItem // by file name; path set
}

type preItem struct {
	name, path string
	data       []byte
}

func newPrestager(ctx context.Context) *prestager {
	p := &prestager{ctx: ctx, in: make(chan preItem, 4096), ready: make(chan struct{}), staged: map[string]preItem{}}
	return p
}

// setDestination starts the stagers once the destination is read (nil
// scan: it could not be read; stage nothing). It must be called exactly
// once, also when reading the destination failed.
func (p *prestager) setDestination(fsys fileSystem, dir string, dst *storeScan, owner [2]int) {
	if p == nil {
		return
	}
	if dst != nil && dst.Tmp != nil && dst.Tmp.Dir {
		p.fsys, p.tmp, p.dst, p.owner, p.on = fsys, path.Join(dir, ".tmp"), dst, owner, true
	}
	close(p.ready)
	n := 1
	if p.on {
		n = fsys.Parallelism()
	}
	for i := 0; i < n; i++ {
		p.wg.Add(1)
		go p.work()
	}
}

// offer hands over one source file as it arrives (nil p: no prestaging).
func (p *prestager) offer(name string, data []byte) {
	if p == nil || len(data) == 0 {
		return
	}
	if _, _, ok := splitName(name); ok {
		p.in <- preItem{name: name, data: data}
	}
}

func (p *prestager) work() {
	defer p.wg.Done()
	<-p.ready
	for it := range p.in {
		if !p.on || p.ctx.Err() != nil {
			continue // drain
		}
		uid, gid := p.owner[0], p.owner[1]
		if df := p.dst.Files[it.name]; df != nil {
			if bytes.Equal(df.Content, it.data) && df.Entry.Mode.Perm() == 0o600 && !foreignOwner(p.owner, df.Entry) {
				continue // unchanged
			}
			uid, gid = ownerOf(p.owner, df.Entry)
		}
		t, err := p.fsys.Stage(p.tmp, it.data, 0o600, uid, gid)
		if err != nil {
			continue // apply stages it again and reports the error
		}
		it.path = t
		p.mu.Lock()
		p.staged[it.name] = it
		p.mu.Unlock()
	}
}

// finish waits for the stagers once the source is read (or failed) and
// setDestination was called.
func (p *prestager) finish() {
	if p == nil {
		return
	}
	close(p.in)
	p.wg.Wait()
}

// take returns the staged file for name if it holds data.
func (p *prestager) take(name string, data []byte) (string, bool) {
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	it, ok := p.staged[name]
	if !ok || !bytes.Equal(it.data, data) {
		return "", false
	}
	delete(p.staged, name)
	return it.path, true
}

// discard removes every staged file not taken.
func (p *prestager) discard() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, it := range p.staged {
		_ = p.fsys.Remove(it.path)
		delete(p.staged, n)
	}
}

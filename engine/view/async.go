package view

import (
	"io"
	"sync"
	"time"
)

// AsyncWriter hands writes to a goroutine that writes them to W in
// batches: steps running in parallel then do not wait for (or contend on)
// one write system call per event. The goroutine lets asyncLinger pass
// before each batch, so that a busy run's lines go out together (about a
// tenth of the system calls and goroutine wake-ups of writing each one at
// once) while no line waits long enough for anyone to see. Flush waits
// until everything written so far is out. Writes block only when more than
// asyncMax bytes are queued (a slow reader).
type AsyncWriter struct {
	w io.Writer

	mu      sync.Mutex
	cond    *sync.Cond // signalled when buf or writing changes; uses mu
	buf     []byte     // queued, not yet handed to w; guarded by mu
	writing bool       // the goroutine is writing a batch; guarded by mu
	started bool       // the goroutine runs; guarded by mu
	err     error      // first write error; guarded by mu
}

const asyncMax = 1 << 20

const asyncLinger = 2 * time.Millisecond

// NewAsyncWriter returns an AsyncWriter on w.
func NewAsyncWriter(w io.Writer) *AsyncWriter {
	a := &AsyncWriter{w: w}
	a.cond = sync.NewCond(&a.mu)
	return a
}

// Write queues b. It never returns an error: a failing output must not
// fail the run (the journal is the record).
func (a *AsyncWriter) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.buf) > asyncMax {
		a.cond.Wait()
	}
	a.buf = append(a.buf, b...)
	if !a.started {
		a.started = true
		go a.loop()
	}
	a.cond.Broadcast()
	return len(b), nil
}

// loop writes queued bytes until nothing is left, then ends (the next
// Write starts it again).
func (a *AsyncWriter) loop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	var spare []byte
	for len(a.buf) > 0 {
		a.mu.Unlock()
		time.Sleep(asyncLinger)
		a.mu.Lock()
		batch := a.buf
		a.buf = spare[:0]
		a.writing = true
		a.mu.Unlock()
		_, err := a.w.Write(batch)
		a.mu.Lock()
		if err != nil && a.err == nil {
			a.err = err
		}
		a.writing = false
		if cap(batch) <= 64<<10 {
			spare = batch
		} else {
			spare = nil
		}
		a.cond.Broadcast()
	}
	a.started = false
	a.cond.Broadcast()
}

// Flush returns once everything written before it is out.
func (a *AsyncWriter) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(a.buf) > 0 || a.writing || a.started {
		a.cond.Wait()
	}
	return a.err
}

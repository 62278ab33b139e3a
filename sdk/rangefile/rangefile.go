// Package rangefile fills a local file from ranges read at once (as
// rclone's multi-thread streams do), each written in place with WriteAt,
// while one goroutine hashes the part of the file already complete from
// its start, reading it back from the page cache with one small buffer:
// the checksum is computed in order, in one pass, as the data arrives, and
// memory stays at a few buffers whatever the file's size. Plugins bring
// the reading of one range (their protocol, headers and errors).
package rangefile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Reader writes the bytes [start, end) of the source into w; the ctx is
// cancelled when another range failed.
type Reader func(ctx context.Context, i int, start, end int64, w io.Writer) error

// Fetch truncates f to size, fills it with ranges of seg bytes (at least
// one range, also for an empty file) read at once by read, and writes the
// file's bytes in order into sum as they complete. The first error of a
// range is returned; a failed hash read is wrapped with "hash".
func Fetch(ctx context.Context, f *os.File, size, seg int64, read Reader, sum io.Writer) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	if seg <= 0 {
		seg = max(size, 1)
	}
	p := &progress{f: f}
	p.cond = sync.NewCond(&p.mu)
	for s := int64(0); s < size || s == 0; s += seg {
		p.starts = append(p.starts, s)
		p.ends = append(p.ends, min(s+seg, size))
		p.done = append(p.done, 0)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range p.starts {
		g.Go(func() error {
			err := read(gctx, i, p.starts[i], p.ends[i], &rangeWriter{p: p, i: i, off: p.starts[i]})
			if err != nil {
				p.mu.Lock()
				p.failed = true
				p.cond.Broadcast()
				p.mu.Unlock()
			}
			return err
		})
	}
	hashed := make(chan error, 1)
	go func() { hashed <- p.hash(size, sum) }()
	err := g.Wait()
	herr := <-hashed
	if err != nil {
		return err
	}
	if herr != nil {
		return fmt.Errorf("hash: %w", herr)
	}
	return nil
}

// progress tracks how far each range of the file has been written.
type progress struct {
	f  *os.File
	mu sync.Mutex
	// cond is signalled under mu whenever done or failed change.
	cond   *sync.Cond
	starts []int64
	ends   []int64
	done   []int64 // bytes written in each range; guarded by mu
	failed bool    // a range failed; guarded by mu
}

// prefix is how many bytes from the start are written (mu held).
func (p *progress) prefix() int64 {
	for i := range p.starts {
		if p.starts[i]+p.done[i] < p.ends[i] {
			return p.starts[i] + p.done[i]
		}
	}
	return p.ends[len(p.ends)-1]
}

// hash writes the file's first size bytes into sum as they complete.
func (p *progress) hash(size int64, sum io.Writer) error {
	buf := make([]byte, 256<<10)
	var pos int64
	for pos < size {
		p.mu.Lock()
		for p.prefix() <= pos && !p.failed {
			p.cond.Wait()
		}
		avail, failed := p.prefix(), p.failed
		p.mu.Unlock()
		if failed {
			return errors.New("a range failed")
		}
		for pos < avail {
			n, err := p.f.ReadAt(buf[:min(int64(len(buf)), avail-pos)], pos)
			sum.Write(buf[:n])
			pos += int64(n)
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
				return err
			}
		}
	}
	return nil
}

// rangeWriter writes one range in place.
type rangeWriter struct {
	p   *progress
	i   int
	off int64
}

func (w *rangeWriter) Write(b []byte) (int, error) {
	n, err := w.p.f.WriteAt(b, w.off)
	w.off += int64(n)
	w.p.mu.Lock()
	w.p.done[w.i] += int64(n)
	w.p.cond.Broadcast()
	w.p.mu.Unlock()
	return n, err
}

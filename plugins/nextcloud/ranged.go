package nextcloud

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Parallel download of large files to a local target: the file is read in
// rangedStreams ranges at once (as rclone's multi-thread streams do), each
// written in place, while one goroutine hashes the part of the file
// already complete from its start, so the SHA1 is still computed in one
// pass as the data arrives.
const (
	defaultRangedThreshold = 64 << 20
	rangedStreams          = 4
)

// progressFile tracks how far each range has been written.
type progressFile struct {
	f      *os.File
	mu     sync.Mutex
	cond   *sync.Cond
	starts []int64
	done   []int64 // bytes written in each range
	ends   []int64
	failed bool
}

// prefix is how many bytes from the start are written.
func (p *progressFile) prefix() int64 {
	for i := range p.starts {
		if p.starts[i]+p.done[i] < p.ends[i] {
			return p.starts[i] + p.done[i]
		}
	}
	return p.ends[len(p.ends)-1]
}

type rangeWriter struct {
	p   *progressFile
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

// fetchRanged writes src into f with parallel ranged GETs, hashing in
// order. It returns errWhole when the server did not answer with ranges
// (the caller then copies the file in one stream).
func fetchRanged(src *srcFile, f *os.File) (int64, error) {
	size := src.size
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	seg := (size + rangedStreams - 1) / rangedStreams
	p := &progressFile{f: f}
	p.cond = sync.NewCond(&p.mu)
	for s := int64(0); s < size; s += seg {
		p.starts = append(p.starts, s)
		p.ends = append(p.ends, min(s+seg, size))
		p.done = append(p.done, 0)
	}
	ctx := src.ctx
	g, gctx := errgroup.WithContext(ctx)
	for i := range p.starts {
		part := &srcFile{ctx: gctx, c: src.c, path: src.path, e: src.e, size: size, etag: src.etag,
			off: p.starts[i], limit: p.ends[i], sha1: src.sha1}
		g.Go(func() error {
			defer part.close()
			bp := bufPool.Get().(*[]byte)
			defer bufPool.Put(bp)
			_, err := io.CopyBuffer(&rangeWriter{p: p, i: i, off: p.starts[i]}, part, *bp)
			if err != nil {
				p.mu.Lock()
				p.failed = true
				p.cond.Broadcast()
				p.mu.Unlock()
			}
			return err
		})
	}
	// Hash what is complete from the start, as it completes.
	hashErr := make(chan error, 1)
	go func() {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		buf := *bp
		var pos int64
		for pos < size {
			p.mu.Lock()
			for p.prefix() <= pos && !p.failed {
				p.cond.Wait()
			}
			avail, failed := p.prefix(), p.failed
			p.mu.Unlock()
			if failed && avail <= pos {
				hashErr <- errors.New("download failed")
				return
			}
			for pos < avail {
				n, err := f.ReadAt(buf[:min(int64(len(buf)), avail-pos)], pos)
				src.sha1.Write(buf[:n])
				if src.md5 != nil {
					src.md5.Write(buf[:n])
				}
				pos += int64(n)
				if err != nil && err != io.EOF {
					hashErr <- err
					return
				}
			}
		}
		hashErr <- nil
	}()
	err := g.Wait()
	herr := <-hashErr
	if err != nil {
		return 0, err
	}
	if herr != nil {
		return 0, fmt.Errorf("hash: %w", herr)
	}
	src.off = size
	return size, nil
}

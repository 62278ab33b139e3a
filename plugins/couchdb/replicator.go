package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// sink receives replicated revisions: a CouchDB database or a dump file.
type sink interface {
	// Missing returns, of the given id → leaf revisions, those the sink lacks.
	Missing(ctx context.Context, revs map[string][]string) (map[string][]string, error)
	// Write stores revisions with their history; refused ones are returned.
	Write(ctx context.Context, docs []fetchedDoc) ([]writeFailure, error)
}

// couchSink writes to a database through _revs_diff and _bulk_docs.
type couchSink struct {
	c  *Client
	db string
}

func (s couchSink) Missing(ctx context.Context, revs map[string][]string) (map[string][]string, error) {
	return s.c.RevsDiff(ctx, s.db, revs)
}

func (s couchSink) Write(ctx context.Context, docs []fetchedDoc) ([]writeFailure, error) {
	raw := make([]json.RawMessage, len(docs))
	for i, d := range docs {
		raw[i] = d.Raw
	}
	return s.c.BulkDocsReplicated(ctx, s.db, raw)
}

// stats counts a replication's work; all fields are updated atomically.
type stats struct {
	ChangesRead   atomic.Int64
	MissingFound  atomic.Int64
	DocsRead      atomic.Int64
	DocsWritten   atomic.Int64
	WriteFailures atomic.Int64
	RevsVanished  atomic.Int64
	Bytes         atomic.Int64
}

// replication copies the changes of one source database into a sink, with
// workers working on batches in parallel and checkpoints only ever
// recording a sequence whose batch and every earlier batch are written.
type replication struct {
	src   *Client
	srcDB string
	dst   sink
	since json.RawMessage

	batchSize int
	workers   int
	// checkpointEvery is the least time between two checkpoints (0 = after
	// every batch).
	checkpointEvery time.Duration
	// checkpoint is called, from one goroutine, with the sequence up to
	// which everything is written.
	checkpoint func(ctx context.Context, seq json.RawMessage) error
	// progress is called after each batch (may be nil).
	progress func(done, pending int64)
	// srcUpdateSeq is the source's numeric update_seq when known, for
	// progress estimates on servers whose _changes has no "pending".
	srcUpdateSeq int64

	stats stats
	// sem bounds the fetch-and-write chunks in flight across batches (the
	// batches' own errgroups cannot: each bounds one batch).
	sem *semaphore.Weighted
	// avgDocBytes is the size of the documents seen last (0 = none yet).
	avgDocBytes atomic.Int64
	failures    []writeFailure // guarded by failMu; first few only
	failMu      sync.Mutex
}

type batch struct {
	n       int
	changes []Change
	lastSeq json.RawMessage
	pending int64
}

type batchDone struct {
	n       int
	lastSeq json.RawMessage
	pending int64
	count   int
	err     error
}

// run replicates until the source has no more changes and returns the
// last sequence written.
func (r *replication) run(ctx context.Context) (json.RawMessage, error) {
	if r.batchSize <= 0 {
		r.batchSize = 500
	}
	if r.workers <= 0 {
		r.workers = 4
	}
	r.sem = semaphore.NewWeighted(int64(r.workers))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &fetcher{c: r.src, db: r.srcDB}

	jobs := make(chan batch, r.workers)
	results := make(chan batchDone, r.workers)
	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		since := r.since
		for n := 0; ; n++ {
			page, err := r.src.Changes(ctx, r.srcDB, since, r.batchSize)
			if err != nil {
				readErr <- fmt.Errorf("read changes of %s: %w", r.srcDB, err)
				return
			}
			if len(page.Results) == 0 {
				readErr <- nil
				return
			}
			r.stats.ChangesRead.Add(int64(len(page.Results)))
			select {
			case jobs <- batch{n: n, changes: page.Results, lastSeq: page.LastSeq, pending: page.Pending}:
			case <-ctx.Done():
				readErr <- nil
				return
			}
			since = page.LastSeq
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < r.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				err := r.process(ctx, f, b)
				select {
				case results <- batchDone{n: b.n, lastSeq: b.lastSeq, pending: b.pending, count: len(b.changes), err: err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()

	// Only this goroutine touches the fields below.
	next := 0
	held := map[int]batchDone{}
	last := r.since
	var written, done int64
	lastCP := time.Now()
	var firstErr error
	for d := range results {
		if firstErr != nil {
			continue
		}
		if d.err != nil {
			firstErr = d.err
			cancel()
			continue
		}
		held[d.n] = d
		advanced := false
		for {
			h, ok := held[next]
			if !ok {
				break
			}
			delete(held, next)
			next++
			last = h.lastSeq
			done += int64(h.count)
			advanced = true
			if r.progress != nil {
				pending := h.pending
				if pending < 0 {
					pending = r.estimatePending(h.lastSeq)
				}
				r.progress(done, pending)
			}
		}
		if advanced && r.checkpoint != nil && time.Since(lastCP) >= r.checkpointEvery {
			if err := r.checkpoint(ctx, last); err != nil {
				firstErr = err
				cancel()
				continue
			}
			written = done
			lastCP = time.Now()
		}
	}
	rerr := <-readErr
	if firstErr == nil && rerr != nil {
		firstErr = rerr
	}
	if firstErr == nil {
		if err := ctx.Err(); err != nil {
			firstErr = err
		}
	}
	// Record what was fully written even when stopping on an error, so a
	// resumed run starts there.
	if r.checkpoint != nil && done > written {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := r.checkpoint(cctx, last); err != nil && firstErr == nil {
			firstErr = err
		}
		ccancel()
	}
	if firstErr != nil {
		return last, firstErr
	}
	return last, nil
}

// estimatePending guesses how many changes follow seq.
func (r *replication) estimatePending(seq json.RawMessage) int64 {
	if r.srcUpdateSeq <= 0 {
		return 0
	}
	n, ok := seqNumber(seq)
	if !ok || n > r.srcUpdateSeq {
		return 0
	}
	return r.srcUpdateSeq - n
}

// process handles one batch: diff, fetch, write.
func (r *replication) process(ctx context.Context, f *fetcher, b batch) error {
	revs := make(map[string][]string, len(b.changes))
	for _, ch := range b.changes {
		if ch.ID == "" || len(ch.Changes) == 0 {
			continue
		}
		revs[ch.ID] = append(revs[ch.ID], ch.Revs()...)
	}
	missing, err := r.dst.Missing(ctx, revs)
	if err != nil {
		return fmt.Errorf("compare revisions with the target: %w", err)
	}
	var nMissing int64
	for _, m := range missing {
		nMissing += int64(len(m))
	}
	r.stats.MissingFound.Add(nMissing)
	if nMissing == 0 {
		return nil
	}
	// The missing revisions are fetched and written in chunks sized from
	// the documents seen so far (small documents: the whole batch; big
	// attachments: a few MB per request), several chunks at once, so the
	// source reads while the target writes.
	ids := make([]string, 0, len(missing))
	for _, ch := range b.changes {
		if _, ok := missing[ch.ID]; ok {
			ids = append(ids, ch.ID)
		}
	}
	// A failed chunk cancels gctx: no further chunk starts and those in
	// flight stop (the whole replication stops on the error anyway).
	g, gctx := errgroup.WithContext(ctx)
	for start := 0; start < len(ids); {
		probe := r.avgDocBytes.Load() == 0
		n := r.chunkSize(len(ids) - start)
		chunk := make(map[string][]string, n)
		for _, id := range ids[start : start+n] {
			chunk[id] = missing[id]
		}
		start += n
		if err := r.sem.Acquire(gctx, 1); err != nil {
			if werr := g.Wait(); werr != nil {
				return werr
			}
			return err
		}
		sized := make(chan struct{})
		var once sync.Once
		signal := func() { once.Do(func() { close(sized) }) }
		g.Go(func() error {
			defer r.sem.Release(1)
			defer signal()
			return r.copyChunk(gctx, f, chunk, signal)
		})
		if probe {
			// Sizes unknown yet: wait until this small chunk is read (its
			// write goes on meanwhile), then size the next ones from it.
			select {
			case <-sized:
			case <-gctx.Done():
			}
		}
	}
	return g.Wait()
}

// chunkTargetBytes is the size aimed at for one _bulk_get answer.
const chunkTargetBytes = 4 << 20

// chunkSize says how many documents to fetch in one request.
func (r *replication) chunkSize(remaining int) int {
	n := r.batchSize
	if avg := r.avgDocBytes.Load(); avg == 0 {
		n = 20 // first requests: measure before sending big ones
	} else if k := int(chunkTargetBytes / avg); k < n {
		n = max(k, 1)
	}
	return min(n, remaining)
}

// copyChunk fetches the given revisions from the source and writes them.
// sized is called once the documents are read and avgDocBytes updated.
func (r *replication) copyChunk(ctx context.Context, f *fetcher, want map[string][]string, sized func()) error {
	docs, vanished, err := f.Fetch(ctx, want)
	if err != nil {
		return fmt.Errorf("read documents from %s: %w", r.srcDB, err)
	}
	r.stats.RevsVanished.Add(int64(vanished))
	r.stats.DocsRead.Add(int64(len(docs)))
	if len(docs) == 0 {
		return nil
	}
	var nb int64
	for _, d := range docs {
		nb += int64(len(d.Raw))
	}
	r.avgDocBytes.Store(max(nb/int64(len(docs)), 1))
	sized()
	failures, err := r.dst.Write(ctx, docs)
	if err != nil {
		return fmt.Errorf("write documents: %w", err)
	}
	r.stats.Bytes.Add(nb)
	r.stats.DocsWritten.Add(int64(len(docs) - len(failures)))
	if len(failures) > 0 {
		r.stats.WriteFailures.Add(int64(len(failures)))
		r.failMu.Lock()
		for _, fl := range failures {
			if len(r.failures) < 20 {
				r.failures = append(r.failures, fl)
			}
		}
		r.failMu.Unlock()
	}
	return nil
}

// failureSummary lists the first refused documents.
func (r *replication) failureSummary() string {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	s := ""
	for i, f := range r.failures {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s: %s %s", f.ID, f.Error, f.Reason)
	}
	return s
}

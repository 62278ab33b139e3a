package synapse

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/sdk"
)

// copierJob is a batch of encoded rows to COPY, or definitions to rebuild.
type copierJob struct {
	batch   map[string]*copyBuf // table -> rows
	rebuild []savedDef
}

// copier runs the MAS side of the load in its own goroutine: it COPYs
// batches of encoded rows and rebuilds the indexes and constraints of the
// tables already complete, so that reading, mapping and encoding Synapse
// rows overlaps with the writes and most of the rebuild. Jobs run in the
// order they are queued. While it runs, nothing else may use the MAS
// connection.
type copier struct {
	ch   chan copierJob
	done chan struct{} // closed when the goroutine has returned
	// failed is set once a job failed; later jobs are dropped.
	failed atomic.Bool
	// err, written and rebuilt are written by the goroutine only, and read
	// after done is closed.
	err     error
	written map[string]int64
	rebuilt int
}

// tailWorkers is max_parallel_maintenance_workers for the index builds
// that run once every Synapse read is done (readsDone closed): then
// nothing else competes for the CPU but the little mapping left, and a
// B-tree build may share its sort with a parallel worker. During the
// reads the builds stay serial (rebuildSettings).
//
// Kept for measured speed: building the five B-trees of compat_sessions
// and compat_access_tokens of the benchmark's scale set took 672 ms of
// wall-clock time serially and 437 ms with one worker, for 10-20% more CPU
// (best of 8 alternating runs each; on a machine loaded by other work,
// load 5.5-6, the two are alike, as the worker then finds no free core).
var tailWorkers = 1

// queuedJobs is how many jobs may wait for the copier: enough batches
// (flushRows rows each, a few MB encoded) for the reads to go on while the
// copier rebuilds the indexes of a finished table.
const queuedJobs = 8

// startCopier starts the goroutine. freeze COPYs with FREEZE, which needs
// the tables truncated earlier in the same transaction.
// Once a batch's table is copied, its slice is offered on free (never
// blocking), for the next batches to reuse.
func startCopier(ctx context.Context, tx pgx.Tx, freeze bool, ev sdk.Events, free chan<- []byte, readsDone <-chan struct{}) *copier {
	c := &copier{ch: make(chan copierJob, queuedJobs), done: make(chan struct{}), written: map[string]int64{}}
	conn := tx.Conn().PgConn()
	go func() {
		defer close(c.done)
		parallel := false
		for job := range c.ch {
			if c.err != nil {
				continue
			}
			if len(job.rebuild) > 0 && !parallel && tailWorkers > 0 && closed(readsDone) {
				parallel = true
				if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL max_parallel_maintenance_workers = %d", tailWorkers)); err != nil {
					c.err = fmt.Errorf("configure the last rebuilds: %w", err)
					c.failed.Store(true)
					continue
				}
			}
			if len(job.rebuild) > 0 {
				t0 := time.Now()
				if err := restoreConstraints(ctx, tx, job.rebuild, ev); err != nil {
					c.err = err
					c.failed.Store(true)
					continue
				}
				c.rebuilt += len(job.rebuild)
				ev.Log(sdk.LevelInfo, fmt.Sprintf("rebuilt %d constraints and indexes of %s in %s, during the load",
					len(job.rebuild), tablesOf(job.rebuild), time.Since(t0).Round(time.Millisecond)))
			}
			for _, t := range masTables {
				n, err := copyEncoded(ctx, conn, t, job.batch[t], freeze)
				c.written[t] += n
				if err != nil {
					// After a failed COPY the connection may still be
					// reading the buffer: leave it to the garbage collector.
					c.err = err
					c.failed.Store(true)
					break
				}
				if b := job.batch[t]; b != nil && b.order == nil {
					select {
					case free <- b.b[:0]:
					default:
					}
				}
			}
		}
	}()
	return c
}

// send queues a job; it blocks while queuedJobs are waiting. It
// reports false once a job has failed.
func (c *copier) send(job copierJob) bool {
	if c.failed.Load() {
		return false
	}
	c.ch <- job
	return true
}

// finish waits for every queued job and returns the first error.
func (c *copier) finish() (written map[string]int64, rebuilt int, err error) {
	close(c.ch)
	<-c.done
	return c.written, c.rebuilt, c.err
}

// tablesOf lists the tables of defs, in order, once each.
func tablesOf(defs []savedDef) string {
	var out []string
	seen := map[string]bool{}
	for _, d := range defs {
		if !seen[d.Table] {
			seen[d.Table] = true
			out = append(out, d.Table)
		}
	}
	return fmt.Sprint(out)
}

// closed reports whether ch is closed (a nil ch never is).
func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

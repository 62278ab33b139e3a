package synapse

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// copier COPYs batches of MAS rows on the MAS transaction in its own
// goroutine, so that reading and mapping Synapse rows overlaps with the
// writes. While it runs, nothing else may use the MAS connection.
type copier struct {
	ch   chan map[string][][]any // batches, table -> rows; closed by finish
	done chan struct{}           // closed when the goroutine has returned
	// failed is set once a COPY failed; later batches are dropped.
	failed atomic.Bool
	// err and written are written by the goroutine only, and read after
	// done is closed.
	err     error
	written map[string]int64
}

func startCopier(ctx context.Context, tx pgx.Tx) *copier {
	c := &copier{ch: make(chan map[string][][]any, 1), done: make(chan struct{}), written: map[string]int64{}}
	go func() {
		defer close(c.done)
		for batch := range c.ch {
			if c.err != nil {
				continue
			}
			for _, t := range masTables {
				n, err := copyRows(ctx, tx, t, batch[t])
				c.written[t] += n
				if err != nil {
					c.err = err
					c.failed.Store(true)
					break
				}
			}
		}
	}()
	return c
}

// send queues a batch; it blocks while the previous one is being written.
// It reports false once a COPY has failed.
func (c *copier) send(batch map[string][][]any) bool {
	if c.failed.Load() {
		return false
	}
	c.ch <- batch
	return true
}

// finish waits for every queued batch and returns the first error.
func (c *copier) finish() (map[string]int64, error) {
	close(c.ch)
	<-c.done
	return c.written, c.err
}

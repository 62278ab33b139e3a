// Package backoff computes the waits between the attempts of a retry loop
// and sleeps them, stopping early when a context ends.
//
// One Policy serves every retry loop of the project: the engine's step
// retries (exponential with a cap and equal jitter, or fixed), the CouchDB
// client's transparent retries (doubling, no jitter) and the plugins'
// polling loops (fixed).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes the waits of a retry loop. The zero Policy waits zero.
type Policy struct {
	// Base is the first wait, and every wait when Fixed.
	Base time.Duration
	// Max caps an exponential wait; zero means no cap.
	Max time.Duration
	// Fixed makes every wait Base instead of doubling it after each
	// attempt.
	Fixed bool
	// Jitter draws each wait uniformly in [d/2, d] ("equal jitter"), so
	// that clients failing together do not retry in lockstep while each
	// still waits at least half the nominal delay.
	Jitter bool
}

// Delay is the wait before retry n: n = 1 is the first retry (after the
// first failed attempt) and waits Base; each later one doubles the wait
// until it reaches Max. n < 1 counts as 1.
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	if !p.Fixed {
		for i := 1; i < n && (p.Max <= 0 || d < p.Max); i++ {
			if d > maxDuration/2 {
				d = maxDuration
				break
			}
			d *= 2
		}
		if p.Max > 0 && d > p.Max {
			d = p.Max
		}
	}
	if !p.Jitter {
		return d
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

const maxDuration = time.Duration(1<<63 - 1)

// Wait sleeps Delay(n), or less when ctx ends first; it then returns
// ctx.Err().
func (p Policy) Wait(ctx context.Context, n int) error {
	return Sleep(ctx, p.Delay(n))
}

// Sleep waits d, or less when ctx ends first; it then returns ctx.Err().
// A zero or negative d only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Package tick runs a function at a fixed interval until told to stop,
// for heartbeats and lease renewals.
package tick

import "time"

// Every calls f every d until stop is closed or f returns false. A call
// going on when stop is closed finishes; none starts after, even when the
// next tick came meanwhile (a call slower than d: a select on the tick
// and the stop would pick either at random, and a heartbeat written after
// its holder stopped would refresh what nobody keeps any more).
func Every(stop <-chan struct{}, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		select {
		case <-stop:
			return
		default:
		}
		if !f() {
			return
		}
	}
}

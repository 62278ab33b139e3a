package tick

import (
	"testing"
	"time"
)

// TestEveryStops: once stop is closed, the beat going on finishes and
// no other starts, even when the next tick came while it went on (a
// heartbeat slower than its interval, as a loaded CouchDB makes it). A
// beat written after the run ended would refresh the heartbeat of a run
// no consumer keeps any more, or touch a finished migration.
func TestEveryStops(t *testing.T) {
	for i := 0; i < 50; i++ {
		stop, release, entered, done := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
		beats := 0
		go func() {
			defer close(done)
			Every(stop, time.Millisecond, func() bool {
				beats++
				if beats == 1 {
					close(entered)
					<-release
				}
				return true
			})
		}()
		<-entered
		time.Sleep(5 * time.Millisecond) // the next ticks come while the beat goes on
		close(stop)
		close(release)
		<-done
		if beats != 1 {
			t.Fatalf("round %d: %d beats, want the one going on when stopped", i, beats)
		}
	}
}

// TestEveryBeats: until stopped, the beat comes every interval.
func TestEveryBeats(t *testing.T) {
	stop, done := make(chan struct{}), make(chan struct{})
	beats := make(chan struct{}, 10)
	go func() {
		defer close(done)
		Every(stop, time.Millisecond, func() bool {
			select {
			case beats <- struct{}{}:
			default:
			}
			return true
		})
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-beats:
		case <-time.After(10 * time.Second):
			t.Fatalf("beat %d never came", i+1)
		}
	}
	close(stop)
	<-done
}

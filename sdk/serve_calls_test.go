package sdk

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// Calls run at once when none is idle, idle goroutines take later calls,
// and all of them exit when the session ends.
func TestSessionGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	s := &serverSession{work: make(chan func()), quit: make(chan struct{})}
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range 3 {
		started.Add(1)
		done.Add(1)
		s.run(func() { started.Done(); <-release; done.Done() })
	}
	started.Wait() // three calls at once: none waited for another
	close(release)
	done.Wait()
	for i := range 20 {
		ch := make(chan int, 1)
		s.run(func() { ch <- i })
		if got := <-ch; got != i {
			t.Fatalf("call %d ran as %d", i, got)
		}
	}
	if n := runtime.NumGoroutine() - base; n > 3 {
		t.Errorf("%d goroutines for at most 3 calls at once", n)
	}
	close(s.quit)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine() - base; n > 0 {
		t.Errorf("%d call goroutines left after the session ended", n)
	}
}

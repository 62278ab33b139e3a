package viewer_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/viewer"
)

// TestThousandStreamsOneRun: 1,000 event-stream clients of one run share
// one follower; heap growth per client stays small, and each client gets
// the run's next change.
func TestThousandStreamsOneRun(t *testing.T) {
	const clients = 1000
	e := newEnv(t, viewer.AuthConfig{})
	id, j := e.synth(gateRunbook, nil, []string{"a"}, true)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var ms0, ms1, ms2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)

	var ready, got sync.WaitGroup
	var failed atomic.Int32
	bodies := make(chan func(), clients)
	ready.Add(clients)
	got.Add(clients)
	for range clients {
		go func() {
			resp, err := c.Get(e.srv.URL + "/api/runs/" + id + "/events")
			if err != nil {
				failed.Add(1)
				ready.Done()
				got.Done()
				return
			}
			bodies <- func() { resp.Body.Close() }
			sc := bufio.NewScanner(resp.Body)
			first, done := true, false
			for sc.Scan() {
				line := sc.Text()
				if first && strings.HasPrefix(line, "event: run") {
					first = false
					ready.Done()
				}
				if !done && strings.HasPrefix(line, "data: ") && strings.Contains(line, `"address":"a"`) && strings.Contains(line, `"state":"succeeded"`) {
					done = true
					got.Done()
				}
			}
			if first {
				ready.Done()
			}
			if !done {
				failed.Add(1)
				got.Done()
			}
		}()
	}
	ready.Wait()
	if n := e.v.Followers(); n != 1 {
		t.Errorf("%d followers for one run, want 1", n)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	must(t, j.Append(&journal.Record{Type: journal.RecStepSucceeded, Step: "a", Attempt: 1}))
	waited := make(chan struct{})
	go func() { got.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("not every client got the change within 30 s")
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d clients failed", f)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms2)
	per := func(a, b uint64) int64 { return (int64(b) - int64(a)) / clients }
	t.Logf("%d clients (both ends in this process): heap +%d B/client connected, +%d B/client after a broadcast; stacks %d KB; goroutines %d",
		clients, per(ms0.HeapAlloc, ms1.HeapAlloc), per(ms0.HeapAlloc, ms2.HeapAlloc), ms2.StackInuse>>10, runtime.NumGoroutine())
	// Each client costs its connection's buffers on both ends (about
	// 10 KB) and its queue; 64 KB each would mean messages are copied
	// per client or queues grow without bound.
	if d := per(ms0.HeapAlloc, ms2.HeapAlloc); d > 64<<10 {
		t.Errorf("heap grew %d B per client", d)
	}
	close(bodies)
	for f := range bodies {
		f()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.v.Followers() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.v.Followers(); n != 0 {
		t.Errorf("%d followers left after every client went", n)
	}
}

// otherStore hides the local store behind the interface, as a database
// store would be: the viewer then loads the run again to follow it.
type otherStore struct{ journal.Store }

func TestFollowAnyStore(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	id, j := e.synth(gateRunbook, nil, []string{"a"}, true)
	rs, err := session.New(session.Options{StateDir: e.stateDir, Getenv: func(string) string { return "" }})
	must(t, err)
	a, err := viewer.NewAuth(viewer.AuthConfig{Listen: "127.0.0.1:0", LocalUser: "tester"})
	must(t, err)
	v, err := viewer.New(viewer.Options{Runs: rs, Store: otherStore{journal.NewLocal(e.stateDir)}, Auth: a})
	must(t, err)
	srv := httptest.NewServer(v)
	defer srv.Close()
	defer v.Close()
	stream := openSSE(t, srv.Client(), srv.URL+"/api/runs/"+id+"/events")
	stream.waitFor(t, "the run on connect", 5*time.Second, func(ev, _ string) bool { return ev == "run" })
	must(t, j.Append(&journal.Record{Type: journal.RecStepSucceeded, Step: "a", Attempt: 1}))
	stream.waitFor(t, "step a succeeded", 5*time.Second, stepEvent("a", func(sv viewer.StepView) bool { return sv.State == journal.StepSucceeded }))
}

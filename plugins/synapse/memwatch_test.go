package synapse

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// memPeak is the highest memory use seen while a migration ran in this
// process.
type memPeak struct {
	heap  uint64 // bytes of heap objects, live or not yet collected
	live  uint64 // bytes of heap live after a collection
	total uint64 // every byte the Go runtime had mapped, less what it returned
	rss   uint64 // the resident set of the whole test process
	base  uint64 // heap objects when the watch started (the test's own data)
}

// watchMemory samples this process's memory every 5 ms until the returned
// function is called, which returns the peaks.
func watchMemory() func() memPeak {
	names := []string{"/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes", "/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}
	samples := make([]metrics.Sample, len(names))
	for i, n := range names {
		samples[i].Name = n
	}
	var p memPeak
	first := true
	read := func() {
		metrics.Read(samples)
		v := func(i int) uint64 {
			if samples[i].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return samples[i].Value.Uint64()
		}
		if first {
			p.base, first = v(0), false
		}
		p.heap = max(p.heap, v(0))
		p.live = max(p.live, v(1))
		p.total = max(p.total, v(2)-v(3))
		p.rss = max(p.rss, rss())
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() memPeak {
		close(stop)
		<-done
		read()
		return p
	}
}

// rss returns this process's resident set size in bytes (0 if unknown).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

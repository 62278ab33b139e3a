package synapse

import (
	"math"
	"runtime/debug"
)

// The migration allocates a string or two for every column it reads and
// keeps every device until the end, so with Go's default pacing (a
// collection each time the heap doubles) its garbage collector marks the
// same long-lived rows over and over. During the load the collector is
// paced at gcPercent, under a soft memory limit of gcLimit (unless the
// process has one already): until the live heap nears the limit, the
// heap grows up to five times the live data instead of twice; beyond it,
// the runtime collects as the limit requires, so the peak stays within
// max(gcLimit, what the default pacing would reach) give or take the
// runtime's slack.
//
// Kept for measured speed: on the benchmark's scale set (760,900 rows
// written) this process used 2.2-2.4 s of CPU per migration with the
// default pacing and 1.6-1.7 s with it (4 runs each), peak RSS of the
// test process 342 MB and 492 MB.
const (
	gcPercent = 400
	gcLimit   = 1 << 30
)

// tuneGC applies the load's pacing and returns the function that puts
// the process's settings back.
func tuneGC() (restore func()) {
	oldPercent := debug.SetGCPercent(gcPercent)
	oldLimit := debug.SetMemoryLimit(-1)
	if oldLimit == math.MaxInt64 {
		debug.SetMemoryLimit(gcLimit)
	}
	return func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}
}

//go:build !unix

package lang

import "time"

// cpuTime is not measured here: timings fall back to wall time.
func cpuTime() (time.Duration, bool) { return 0, false }

//go:build unix

package nextcloud

import (
	"os"
	"syscall"
	"time"
)

// cpuTimes is the process's user and system CPU time so far.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// maxRSS is the peak resident set of an exited process, in bytes.
func maxRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}

// childCPU is an exited process's user and system CPU time.
func childCPU(ps *os.ProcessState) (user, sys time.Duration) { return ps.UserTime(), ps.SystemTime() }

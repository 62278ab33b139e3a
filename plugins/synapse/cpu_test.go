package synapse

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuMeter adds up the CPU time of this process and of every process of
// the local PostgreSQL cluster (the postmaster, its live children, and the
// children it has reaped: backends and parallel workers that exited). On
// a shared machine wall-clock time depends on the other load; CPU time
// much less, so the benchmark reports both.
type cpuMeter struct {
	postmaster int // 0: the cluster is not local, only this process counts
}

// clockTick is the unit of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

func newCPUMeter(ctx context.Context, conn *pgx.Conn) *cpuMeter {
	var dir string
	if conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir) != nil {
		return &cpuMeter{}
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return &cpuMeter{}
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if _, ok := procTimes(pid); !ok {
		return &cpuMeter{}
	}
	return &cpuMeter{postmaster: pid}
}

// local reports whether the cluster's processes are counted.
func (c *cpuMeter) local() bool { return c.postmaster != 0 }

// now returns the CPU time used so far by this process and the cluster.
func (c *cpuMeter) now() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if c.postmaster == 0 {
		return total
	}
	if f, ok := procTimes(c.postmaster); ok {
		total += time.Duration(f[0]+f[1]+f[2]+f[3]) * clockTick
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, ok := procTimes(pid); ok && f[4] == int64(c.postmaster) {
			total += time.Duration(f[0]+f[1]) * clockTick
		}
	}
	return total
}

// procTimes reads utime, stime, cutime, cstime and the parent pid of a
// process from /proc/<pid>/stat.
func procTimes(pid int) ([5]int64, bool) {
	var out [5]int64
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return out, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return out, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return out, false
	}
	for k, idx := range []int{11, 12, 13, 14, 1} { // utime stime cutime cstime ppid
		out[k], _ = strconv.ParseInt(f[idx], 10, 64)
	}
	return out, true
}

//go:build !unix

package nextcloud

import (
	"os"
	"time"
)

func cpuTimes() (user, sys time.Duration) { return 0, 0 }

func maxRSS(ps *os.ProcessState) int64 { return 0 }

func childCPU(ps *os.ProcessState) (user, sys time.Duration) { return ps.UserTime(), ps.SystemTime() }

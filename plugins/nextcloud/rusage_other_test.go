//go:build !unix

package nextcloud

import "time"

func cpuTimes() (user, sys time.Duration) { return 0, 0 }

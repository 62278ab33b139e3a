//go:build !windows

package nextcloud

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process of this host runs.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

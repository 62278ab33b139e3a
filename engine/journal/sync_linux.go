//go:build linux

package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data (and its size) to disk. fdatasync skips
// metadata a later read does not need (times), unlike fsync.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

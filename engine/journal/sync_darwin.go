//go:build darwin

package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data to stable storage. On macOS fsync(2) only
// hands the data to the drive, whose cache a power loss empties:
// F_FULLFSYNC asks the drive to flush too. Filesystems that do not support
// it (some network ones) get fsync.
func datasync(f *os.File) error {
	for {
		_, err := unix.FcntlInt(f.Fd(), unix.F_FULLFSYNC, 0)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		}
		return f.Sync()
	}
}

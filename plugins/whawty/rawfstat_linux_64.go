//go:build linux && (amd64 || arm64)

package whawty

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFstat is fstat(2) as a raw system call (see reader.openat): on these
// platforms unix.Stat_t is the kernel's struct stat.
func rawFstat(fd int, st *unix.Stat_t) error {
	if _, _, errno := syscall.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0); errno != 0 {
		return errno
	}
	return nil
}

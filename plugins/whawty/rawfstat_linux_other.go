//go:build linux && !(amd64 || arm64)

package whawty

import "golang.org/x/sys/unix"

// rawFstat is unix.Fstat where the kernel's struct stat differs from
// unix.Stat_t.
func rawFstat(fd int, st *unix.Stat_t) error { return unix.Fstat(fd, st) }

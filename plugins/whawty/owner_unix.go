//go:build unix

package whawty

import (
	"io/fs"
	"syscall"
)

// fileOwner is the owner and group of a file as the local system reports
// them.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, false
	}
	return int(st.Uid), int(st.Gid), true
}

//go:build unix

package pluginhost

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fileIdentity names the file at path: device, inode, size, modification
// and change times. ok is false when they cannot be read.
func fileIdentity(path string) (id string, ok bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return "", false
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), true
}

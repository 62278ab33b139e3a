//go:build unix

package core

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

const ownersSupported = true

// openNoFollow opens path for reading, failing (ELOOP) when its last
// component is a symlink. O_NONBLOCK keeps a FIFO from blocking the open.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// isSymlinkErr reports whether an O_NOFOLLOW open failed on a symlink
// (ELOOP; EMLINK on FreeBSD).
func isSymlinkErr(err error) bool {
	return errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK)
}

// ownerOf returns the numeric owner of st.
func ownerOf(st fs.FileInfo) *fileOwner {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return &fileOwner{UID: int(s.Uid), GID: int(s.Gid)}
	}
	return nil
}

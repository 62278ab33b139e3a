//go:build !unix

package core

import (
	"io/fs"
	"os"
)

// Files have no numeric owner here: owner is refused, none is kept.
const ownersSupported = false

// openNoFollow opens path for reading, refusing a symlink. Without
// O_NOFOLLOW the check and the open are two steps.
func openNoFollow(path string) (*os.File, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.Open(path)
}

var errSymlink = &fs.PathError{Op: "open", Err: fs.ErrInvalid}

func isSymlinkErr(err error) bool { return err != nil && err == error(errSymlink) }

func ownerOf(fs.FileInfo) *fileOwner { return nil }

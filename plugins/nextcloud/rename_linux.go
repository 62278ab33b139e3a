//go:build linux

package nextcloud

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves tmp to final unless final exists (fs.ErrExist).
func renameNoReplace(tmp, final string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EEXIST) {
		return os.ErrExist
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return linkNoReplace(tmp, final)
	}
	return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: err}
}

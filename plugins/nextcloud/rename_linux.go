//go:build linux

package nextcloud

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"time"

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

// createAnon creates an unnamed file in dir (O_TMPFILE): nothing is left
// behind if the copy dies before linkAnon names it, and it costs one
// directory update instead of a create and a rename. errNoAnon when the
// file system does not support it.
func createAnon(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o666)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, errNoAnon
		}
		return nil, &os.PathError{Op: "create", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// linkAnon sets the mtime of an unnamed file (when not zero) and gives it
// the name final, failing with fs.ErrExist when final exists.
func linkAnon(f *os.File, final string, mt time.Time) error {
	fd := int(f.Fd())
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	if !mt.IsZero() {
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, proc, ts, 0); err != nil {
			return &os.PathError{Op: "chtimes", Path: final, Err: err}
		}
	}
	err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		// No /proc: link the descriptor itself (needs CAP_DAC_READ_SEARCH).
		err = unix.Linkat(fd, "", unix.AT_FDCWD, final, unix.AT_EMPTY_PATH)
	}
	if errors.Is(err, unix.EEXIST) {
		return fs.ErrExist
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: proc, New: final, Err: err}
	}
	return nil
}

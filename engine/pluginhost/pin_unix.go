//go:build unix

package pluginhost

import (
	"io/fs"
	"os"
	"syscall"
)

var errETXTBSY = syscall.ETXTBSY

// exeName is the file name of an executable.
func exeName(name string) string { return name }

// checkPlacement refuses a plugin file, or the directory holding it, that
// its group or other users can write. st is the open file's (nil: stat
// path).
func checkPlacement(name, path string, isDir bool, st fs.FileInfo) error {
	if st == nil {
		var err error
		if st, err = os.Stat(path); err != nil {
			return err
		}
	}
	if st.Mode().Perm()&0o022 != 0 {
		return placementError(name, path, isDir, st.Mode())
	}
	return nil
}

// privateDir reports whether dir is a real directory (not a symlink) owned
// by this user that nobody else can write.
func privateDir(dir string) bool {
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm()&0o022 != 0 {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == os.Geteuid()
}

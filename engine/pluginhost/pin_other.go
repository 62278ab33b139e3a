//go:build !unix

package pluginhost

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

var errETXTBSY = errors.New("text file busy")

// exeName is the file name of an executable.
func exeName(name string) string {
	if strings.HasSuffix(name, ".exe") {
		return name
	}
	return name + ".exe"
}

// checkPlacement: permission bits mean nothing here (Windows ACLs); the
// private copy still closes the race between check and execution.
func checkPlacement(name, path string, isDir bool, st fs.FileInfo) error { return nil }

// privateDir reports whether dir is a real directory.
func privateDir(dir string) bool {
	st, err := os.Lstat(dir)
	return err == nil && st.IsDir()
}

//go:build !linux && !darwin

package journal

import "os"

// datasync flushes f to disk: fsync(2) on other unixes, FlushFileBuffers on
// Windows.
func datasync(f *os.File) error { return f.Sync() }

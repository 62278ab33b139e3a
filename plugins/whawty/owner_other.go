//go:build !unix

package whawty

import "io/fs"

// fileOwner: this system has no numeric owners (Windows); entries carry
// UID and GID -1, which the actions read as unknown.
func fileOwner(fs.FileInfo) (uid, gid int, ok bool) { return -1, -1, false }

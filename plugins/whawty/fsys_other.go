//go:build !linux

package whawty

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Elsewhere than on Linux the local transport uses package os: one lstat
// and one read per file, an fsync per staged file.

func (l localFS) readSlots(ctx context.Context, dir string, names []string, meta bool) ([]fileData, []bool, error) {
	return parallelSlots(ctx, l.Parallelism(), dir, names, func(name string, _ *reader) (fileData, error) {
		return readRegular(dir, name, meta)
	})
}

// readRegular reads name in dir, which must be a regular file (a symlink is
// refused, not followed); with meta it also returns the file's entry
// (permission bits only, like the Linux reader).
func readRegular(dir, name string, meta bool) (fileData, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fileData{}, fmt.Errorf("%s: not a file name in %s", name, dir)
	}
	p := path.Join(dir, name)
	fi, err := os.Lstat(p)
	if err != nil {
		return fileData{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileData{}, fmt.Errorf("%s is not a regular file", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fileData{}, err
	}
	fd := fileData{Data: b}
	if meta {
		e := entry{Name: name, Mode: fi.Mode().Perm(), Size: int64(len(b)), UID: -1, GID: -1, Regular: true}
		if uid, gid, ok := fileOwner(fi); ok {
			e.UID, e.GID = uid, gid
		}
		fd.Entry = &e
	}
	return fd, nil
}

// stage writes a staged file and always fsyncs it: without syncfs, Flush
// has no cheaper way to make a batch durable.
func (localFS) stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int, _ bool) (string, error) {
	tmp := path.Join(tmpDir, tempName())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm.Perm())
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm.Perm()) // the umask may have taken bits away
	}
	if err == nil && uid >= 0 && gid >= 0 && os.Geteuid() == 0 && (uid != 0 || gid != os.Getegid()) {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// Flush has nothing left to do: stage synced every file.
func (localFS) Flush(string) error { return nil }

func (localFS) Rename(oldPath, newPath string) error { return os.Rename(oldPath, newPath) }

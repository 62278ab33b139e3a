//go:build linux

package whawty

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux the local transport reads with raw openat/fstat/read/close
// system calls (four per file, without os.File's poller registration and
// finalizer), stages files with raw system calls too, and makes a batch of
// staged files durable with one syncfs instead of an fsync per file.

func (l localFS) readSlots(ctx context.Context, dir string, names []string, meta bool) ([]fileData, []bool, error) {
	// Open each file relative to the directory: the kernel resolves one
	// name per file instead of the whole path.
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	return parallelSlots(ctx, l.Parallelism(), dir, names, func(name string, r *reader) (fileData, error) {
		return r.readAt(dfd, dir, name, meta)
	})
}

// noNoatime is set once an O_NOATIME open was refused: reading a store
// without it would update every file's atime (once a day with relatime),
// an inode write per file.
var noNoatime atomic.Bool

// readAt reads name in the directory open as dfd (dir is its path, for
// errors). name must be a plain file name. With meta it fstats the file
// and returns its entry; without, it relies on the listing's type and
// O_NOFOLLOW|O_NONBLOCK (a file swapped for a symlink fails; a FIFO reads
// as empty).
func (r *reader) readAt(dfd int, dir, name string, meta bool) (fileData, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fileData{}, fmt.Errorf("%s: not a file name in %s", name, dir)
	}
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	if !noNoatime.Load() {
		flags |= unix.O_NOATIME
	}
	fd, err := r.openat(dfd, name, flags)
	if err == unix.EPERM && flags&unix.O_NOATIME != 0 {
		// O_NOATIME needs the file's owner (or CAP_FOWNER): not us.
		noNoatime.Store(true)
		fd, err = r.openat(dfd, name, flags&^unix.O_NOATIME)
	}
	if err != nil {
		return fileData{}, &fs.PathError{Op: "open", Path: path.Join(dir, name), Err: err}
	}
	defer rawClose(fd)
	var e *entry
	if meta {
		var st unix.Stat_t
		if err := rawFstat(fd, &st); err != nil {
			return fileData{}, &fs.PathError{Op: "fstat", Path: path.Join(dir, name), Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fileData{}, fmt.Errorf("%s is not a regular file", path.Join(dir, name))
		}
		if len(r.ents) == 0 {
			r.ents = make([]entry, 1024)
		}
		e, r.ents = &r.ents[0], r.ents[1:]
		*e = entry{Name: name, Mode: fs.FileMode(st.Mode & 0o777), Size: st.Size,
			UID: int(st.Uid), GID: int(st.Gid), Regular: true}
	}
	// Hash files are small: one read into the buffer usually returns the
	// whole file (a short read of a regular file means its end).
	var big []byte
	for {
		n, _, errno := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return fileData{}, &fs.PathError{Op: "read", Path: path.Join(dir, name), Err: errno}
		}
		if big == nil && int(n) < len(r.buf) {
			if e != nil {
				e.Size = int64(n)
			}
			return fileData{Data: r.keep(r.buf[:n]), Entry: e}, nil
		}
		big = append(big, r.buf[:n]...)
		if n == 0 {
			if e != nil {
				e.Size = int64(len(big))
			}
			return fileData{Data: big, Entry: e}, nil
		}
	}
}

// openat opens name relative to dfd with a raw system call: reading a
// cached small file takes a few microseconds, less than the scheduler's
// bookkeeping around a blocking system call would (readAt's fstat, read and
// close are raw too). A call that waits for the disk keeps its thread's P
// meanwhile, which with one worker per core only delays other goroutines.
// The name is made NUL-terminated in a reused buffer.
func (r *reader) openat(dfd int, name string, flags int) (int, error) {
	r.name = append(append(r.name[:0], name...), 0)
	for {
		fd, _, errno := syscall.RawSyscall6(unix.SYS_OPENAT, uintptr(dfd), uintptr(unsafe.Pointer(&r.name[0])), uintptr(flags), 0, 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

func rawClose(fd int) { _, _, _ = syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

func (localFS) stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int, fsync bool) (tmp string, err error) {
	tmp = path.Join(tmpDir, tempName())
	// Raw system calls: os.File would try to register the file with the
	// poller and set a finalizer, for every staged file.
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: tmp, Err: err}
	}
	defer func() {
		if err != nil {
			_ = unix.Unlink(tmp)
		}
	}()
	op := "write"
	for b := data; len(b) > 0 && err == nil; {
		var n int
		if n, err = unix.Write(fd, b); err == unix.EINTR {
			err = nil
		}
		b = b[max(n, 0):]
	}
	if err == nil && perm.Perm()&^processUmask() != perm.Perm() {
		op, err = "chmod", unix.Fchmod(fd, uint32(perm.Perm())) // the umask took bits away
	}
	if err == nil && uid >= 0 && gid >= 0 && os.Geteuid() == 0 && (uid != 0 || gid != os.Getegid()) {
		op, err = "chown", unix.Fchown(fd, uid, gid)
	}
	if err == nil && fsync {
		op, err = "fsync", unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		op, err = "close", cerr
	}
	if err != nil {
		return tmp, &fs.PathError{Op: op, Path: tmp, Err: err}
	}
	return tmp, nil
}

// processUmask is the process's umask as /proc reports it (0o777, "take
// every bit away", when unknown, so callers always chmod).
var processUmask = sync.OnceValue(func() fs.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return fs.FileMode(m) & 0o777
			}
		}
	}
	return 0o777
})

// Flush syncs the whole file system dir is on once (syncfs), which is far
// cheaper than an fsync per staged file.
func (localFS) Flush(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return d.Sync()
	}
	return nil
}

// Rename is rename(2) itself (os.Rename lstats the target first).
func (localFS) Rename(oldPath, newPath string) error {
	if err := unix.Rename(oldPath, newPath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldPath, New: newPath, Err: err}
	}
	return nil
}

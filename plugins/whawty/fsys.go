package whawty

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// entry is one directory entry as a transport sees it (never following
// symlinks).
type entry struct {
	Name    string
	Mode    fs.FileMode // full mode: type bits and permissions
	Size    int64
	UID     int // -1 when unknown
	GID     int
	Regular bool
	Dir     bool
	// Lazy is set when only the type is known (a regular file listed
	// without a stat): Mode's permissions, Size, UID and GID are not.
	// ReadFiles returns the full entry.
	Lazy bool
}

// fileData is a file's content and, when the transport learnt it while
// reading, its full entry.
type fileData struct {
	Data  []byte
	Entry *entry
}

// fileSystem is the small set of file operations the actions need, on a
// local disk or over SFTP. Paths are absolute, slash-separated.
type fileSystem interface {
	// ReadDir lists dir, sorted by name. Regular files may come back Lazy.
	ReadDir(dir string) ([]entry, error)
	ReadFile(p string) ([]byte, error)
	// ReadFiles reads the named files in dir, in parallel. Files that
	// vanished are left out of the result.
	ReadFiles(ctx context.Context, dir string, names []string) (map[string]fileData, error)
	// Stat describes p without following a final symlink.
	Stat(p string) (entry, error)
	// WriteAtomic writes data to a fresh file in tmpDir, gives it perm (and
	// uid/gid when they are >= 0), syncs it and renames it over p. tmpDir must
	// be on the same file system as p. On failure the temp file is removed.
	WriteAtomic(p, tmpDir string, data []byte, perm fs.FileMode, uid, gid int) error
	// Stage writes data to a fresh file in tmpDir with perm (and uid/gid when
	// >= 0) and returns its path. Flush makes staged files durable; Rename
	// then moves them into place.
	Stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int) (string, error)
	// Flush makes every file staged in dir durable.
	Flush(dir string) error
	// Rename atomically replaces newPath with oldPath.
	Rename(oldPath, newPath string) error
	// SyncDir makes renames and removes in dir durable (best effort).
	SyncDir(dir string)
	Remove(p string) error
	Mkdir(p string, perm fs.FileMode) error
	Chmod(p string, perm fs.FileMode) error
	// Parallelism is how many reads are worth running at once.
	Parallelism() int
}

// tempName is a random file name for a temp file.
func tempName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "runbook-" + hex.EncodeToString(b[:])
}

// localFS is the local disk.
type localFS struct{}

var _ fileSystem = localFS{}

// Parallelism: reads of cached files are CPU-bound system calls.
func (localFS) Parallelism() int { return min(max(runtime.NumCPU(), 2), 8) }

func entryOf(name string, fi fs.FileInfo) entry {
	e := entry{Name: name, Mode: fi.Mode(), Size: fi.Size(), UID: -1, GID: -1,
		Regular: fi.Mode().IsRegular(), Dir: fi.IsDir()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
	}
	return e
}

func (localFS) ReadDir(dir string) ([]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		if de.Type().IsRegular() {
			// Save an lstat per file: ReadFiles fstats what it reads.
			out = append(out, entry{Name: de.Name(), UID: -1, GID: -1, Regular: true, Lazy: true})
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, entryOf(de.Name(), fi))
	}
	return out, nil
}

func (localFS) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// ReadFiles reads with raw open/fstat/read/close: four system calls per
// file, without os.File's poller registration and finalizer.
func (l localFS) ReadFiles(ctx context.Context, dir string, names []string) (map[string]fileData, error) {
	// Open each file relative to the directory: the kernel resolves one
	// name per file instead of the whole path.
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	return parallelRead(ctx, l.Parallelism(), dir, names, func(name string) (fileData, error) {
		return readLocalAt(dfd, dir, name)
	})
}

// readLocalAt reads name in the directory open as dfd (dir is its path,
// for errors). name must be a plain file name.
func readLocalAt(dfd int, dir, name string) (fileData, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fileData{}, fmt.Errorf("%s: not a file name in %s", name, dir)
	}
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fileData{}, &fs.PathError{Op: "open", Path: path.Join(dir, name), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileData{}, &fs.PathError{Op: "fstat", Path: path.Join(dir, name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileData{}, fmt.Errorf("%s is not a regular file", path.Join(dir, name))
	}
	e := entry{Name: name, Mode: fs.FileMode(st.Mode & 0o777), Size: st.Size,
		UID: int(st.Uid), GID: int(st.Gid), Regular: true}
	// Whawty and sync replace files by rename, never in place: reading
	// st.Size bytes reads the whole file, usually in one system call.
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Read(fd, b[off:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fileData{}, &fs.PathError{Op: "read", Path: path.Join(dir, name), Err: err}
		}
		if n == 0 { // shrank while reading
			b = b[:off]
			break
		}
		off += n
	}
	return fileData{Data: b, Entry: &e}, nil
}

func (localFS) Stat(p string) (entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return entry{}, err
	}
	return entryOf(path.Base(p), fi), nil
}

func (l localFS) WriteAtomic(p, tmpDir string, data []byte, perm fs.FileMode, uid, gid int) error {
	tmp, err := l.stage(tmpDir, data, perm, uid, gid, true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	l.SyncDir(path.Dir(p))
	return nil
}

func (l localFS) Stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int) (string, error) {
	return l.stage(tmpDir, data, perm, uid, gid, false)
}

func (localFS) stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int, fsync bool) (tmp string, err error) {
	tmp = path.Join(tmpDir, tempName())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && uid >= 0 && gid >= 0 && os.Geteuid() == 0 && (uid != 0 || gid != os.Getegid()) {
		err = f.Chown(uid, gid)
	}
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return tmp, err
}

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

func (localFS) Rename(oldPath, newPath string) error { return os.Rename(oldPath, newPath) }

func (localFS) SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func (localFS) Remove(p string) error { return os.Remove(p) }

func (localFS) Mkdir(p string, perm fs.FileMode) error {
	if err := os.Mkdir(p, perm); err != nil {
		return err
	}
	return os.Chmod(p, perm) // umask-proof
}

func (localFS) Chmod(p string, perm fs.FileMode) error { return os.Chmod(p, perm) }

// parallelRead runs read on every name in dir with n workers. Each worker
// takes a contiguous share of the names and keeps its own results, so no
// per-file hand-off or locking happens (that costs more than the read itself
// on a busy machine). A file that vanished is left out of the result.
func parallelRead(ctx context.Context, n int, dir string, names []string, read func(name string) (fileData, error)) (map[string]fileData, error) {
	if n < 1 {
		n = 1
	}
	if n > len(names) {
		n = len(names)
	}
	type share struct {
		out map[string]fileData
		err error
	}
	shares := make([]share, n)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		lo, hi := w*len(names)/n, (w+1)*len(names)/n
		wg.Add(1)
		go func(sh *share, names []string) {
			defer wg.Done()
			sh.out = make(map[string]fileData, len(names))
			for i, name := range names {
				if i%256 == 0 {
					if err := ctx.Err(); err != nil {
						sh.err = err
						return
					}
				}
				fd, err := read(name)
				switch {
				case err == nil:
					sh.out[name] = fd
				case errors.Is(err, fs.ErrNotExist):
				default:
					sh.err = fmt.Errorf("read %s: %w", path.Join(dir, name), err)
					return
				}
			}
		}(&shares[w], names[lo:hi])
	}
	wg.Wait()
	out := make(map[string]fileData, len(names))
	for _, sh := range shares {
		if sh.err != nil {
			return nil, sh.err
		}
		for k, v := range sh.out {
			out[k] = v
		}
	}
	return out, nil
}

package whawty

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

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

// ReadDir reads the directory with getdents and trusts its file types:
// regular files come back Lazy, without a stat; only other entries (and
// file systems that report no type) are stat'ed. Names share one string.
func (localFS) ReadDir(dir string) ([]entry, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var dst unix.Stat_t
	if err := unix.Fstat(fd, &dst); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	// A directory's size grows with its entries (ext4: about 40 bytes
	// each); guess the count to allocate once.
	guess := min(int(dst.Size/32), 1<<22)
	buf := make([]byte, 256<<10)
	all := make([]byte, 0, guess*16) // regular files' names, back to back
	ends := make([]int, 0, guess)    // end of each name in all
	var others []entry
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: dir, Err: err}
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, fmt.Errorf("getdents %s: bad record", dir)
			}
			typ, name := b[18], b[19:reclen]
			b = b[reclen:]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == "." || string(name) == ".." {
				continue
			}
			if typ == unix.DT_REG {
				all = append(all, name...)
				ends = append(ends, len(all))
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstatat(fd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err == unix.ENOENT {
					continue // removed while listing
				}
				return nil, &fs.PathError{Op: "lstat", Path: path.Join(dir, string(name)), Err: err}
			}
			others = append(others, entryFromStat(string(name), st.Mode, st.Uid, st.Gid, st.Size))
		}
	}
	str := string(all)
	names := make([]string, len(ends))
	for i, start := 0, 0; i < len(ends); i++ {
		names[i], start = str[start:ends[i]], ends[i]
	}
	slices.Sort(names)
	slices.SortFunc(others, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
	out := make([]entry, 0, len(names)+len(others))
	for i, j := 0, 0; i < len(names) || j < len(others); {
		if j == len(others) || (i < len(names) && names[i] < others[j].Name) {
			out = append(out, entry{Name: names[i], UID: -1, GID: -1, Regular: true, Lazy: true})
			i++
		} else {
			out = append(out, others[j])
			j++
		}
	}
	return out, nil
}

func (localFS) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// ReadFiles reads with raw openat/fstat/read/close: four system calls per
// file, without os.File's poller registration and finalizer.
func (l localFS) ReadFiles(ctx context.Context, dir string, names []string) (map[string]fileData, error) {
	return l.readAll(ctx, dir, names, true)
}

func (l localFS) readAll(ctx context.Context, dir string, names []string, meta bool) (map[string]fileData, error) {
	data, ok, err := l.readSlots(ctx, dir, names, meta)
	if err != nil {
		return nil, err
	}
	return byName(names, data, ok), nil
}

// slotReader is implemented by transports that can return file contents
// by position, which saves a map of the whole store.
type slotReader interface {
	// readSlots is ReadFiles by position, without entries unless meta:
	// ok[i] is false when names[i] vanished.
	readSlots(ctx context.Context, dir string, names []string, meta bool) (data []fileData, ok []bool, err error)
}

var _ slotReader = localFS{}

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

// reader is one worker's reusable state: a read buffer and an arena that
// file contents are carved from (one allocation per many small files).
type reader struct {
	buf   [8192]byte
	arena []byte
	name  []byte  // NUL-terminated name for openat
	ents  []entry // entries are carved from this slab
}

// keep copies b into the arena.
func (r *reader) keep(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	if len(b) > len(r.arena) {
		if len(b) > 16<<10 {
			return append([]byte(nil), b...)
		}
		r.arena = make([]byte, 256<<10)
	}
	out := r.arena[:len(b):len(b)]
	copy(out, b)
	r.arena = r.arena[len(b):]
	return out
}

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

// parallelRead runs read on every name in dir with n workers and returns
// the results by name. A file that vanished is left out of the result.
func parallelRead(ctx context.Context, n int, dir string, names []string, read func(name string, r *reader) (fileData, error)) (map[string]fileData, error) {
	data, ok, err := parallelSlots(ctx, n, dir, names, read)
	if err != nil {
		return nil, err
	}
	return byName(names, data, ok), nil
}

// parallelSlots runs read on every name in dir with n workers; data[i] and
// ok[i] are names[i]'s result (ok false: the file vanished). Each worker
// takes a contiguous share of the names and writes only its own slots, so
// no per-file hand-off or locking happens (that costs more than the read
// itself on a busy machine).
func parallelSlots(ctx context.Context, n int, dir string, names []string, read func(name string, r *reader) (fileData, error)) ([]fileData, []bool, error) {
	if n < 1 {
		n = 1
	}
	if n > len(names) {
		n = len(names)
	}
	data := make([]fileData, len(names))
	ok := make([]bool, len(names))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		lo, hi := w*len(names)/n, (w+1)*len(names)/n
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			r := &reader{}
			for i := lo; i < hi; i++ {
				if (i-lo)%256 == 0 {
					if err := ctx.Err(); err != nil {
						errs[w] = err
						return
					}
				}
				fd, err := read(names[i], r)
				switch {
				case err == nil:
					data[i], ok[i] = fd, true
				case errors.Is(err, fs.ErrNotExist):
				default:
					errs[w] = fmt.Errorf("read %s: %w", path.Join(dir, names[i]), err)
					return
				}
			}
		}(w, lo, hi)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return data, ok, nil
}

// byName maps the read slots of names to their names, leaving out the
// files that vanished (ok false).
func byName(names []string, data []fileData, ok []bool) map[string]fileData {
	out := make(map[string]fileData, len(names))
	for i := range names {
		if ok[i] {
			out[names[i]] = data[i]
		}
	}
	return out
}

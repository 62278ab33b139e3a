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

	"golang.org/x/sync/errgroup"
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
	// Readlink returns the target of the symlink p.
	Readlink(p string) (string, error)
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
	if uid, gid, ok := fileOwner(fi); ok {
		e.UID, e.GID = uid, gid
	}
	return e
}

// ReadDir lists dir with the types the directory itself records: regular
// files come back Lazy, without a stat; only other entries (and file
// systems that record no type) are stat'ed.
func (localFS) ReadDir(dir string) ([]entry, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		if de.Type().IsRegular() {
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

// ReadFiles reads the files in parallel (fsys_linux.go: with raw system
// calls).
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

func (localFS) Stat(p string) (entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return entry{}, err
	}
	return entryOf(path.Base(p), fi), nil
}

func (localFS) Readlink(p string) (string, error) { return os.Readlink(p) }

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
	var g errgroup.Group
	for w := 0; w < n; w++ {
		lo, hi := w*len(names)/n, (w+1)*len(names)/n
		g.Go(func() error {
			r := &reader{}
			for i := lo; i < hi; i++ {
				if (i-lo)%256 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				fd, err := read(names[i], r)
				switch {
				case err == nil:
					data[i], ok[i] = fd, true
				case errors.Is(err, fs.ErrNotExist):
				default:
					return fmt.Errorf("read %s: %w", path.Join(dir, names[i]), err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
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

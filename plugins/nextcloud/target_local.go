package nextcloud

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// target is where a copy writes: a local directory or a WebDAV server.
type target interface {
	describe() string
	// mkdir creates a folder (relative path; "" is the target's root) and
	// reports whether it created it.
	mkdir(ctx context.Context, rel string) (bool, error)
	// put copies one file from src, verifying it, and returns what undo
	// needs; an *errSkip when the target already has the file.
	put(ctx context.Context, src *srcFile, rel string) (ledgerLine, error)
	// undoFile deletes a file the copy created if it is still as the copy
	// left it; otherwise it returns a description of the drift.
	undoFile(ctx context.Context, l ledgerLine, force bool) (drift string, err error)
	// undoDir deletes a folder the copy created if it is empty.
	undoDir(ctx context.Context, rel string, force bool) (drift string, err error)
	close()
}

// localTarget writes into a local directory.
type localTarget struct {
	dir string
	// rangedMin is the size from which a file is read in parallel ranges.
	rangedMin int64
	// fresh holds the folders this copy created: nothing else can be in
	// them but what appears during the copy, which renameNoReplace catches,
	// so their files need no existence check first.
	fresh sync.Map
	// noAnon is set once the file system refused an unnamed file.
	noAnon atomic.Bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (t *localTarget) describe() string { return t.dir }
func (t *localTarget) close()           {}

func (t *localTarget) abs(rel string) string { return filepath.Join(t.dir, filepath.FromSlash(rel)) }

func (t *localTarget) mkdir(_ context.Context, rel string) (bool, error) {
	p := t.abs(rel)
	if rel == "" {
		if _, err := os.Stat(p); err == nil {
			return false, nil
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return false, localErr(err)
		}
	}
	err := os.Mkdir(p, 0o755)
	if errors.Is(err, fs.ErrExist) {
		if st, serr := os.Stat(p); serr == nil && st.IsDir() {
			return false, nil
		}
		return false, &errSkip{"a file of that name exists at the target"}
	}
	if err != nil {
		return false, localErr(err)
	}
	t.fresh.Store(rel, true)
	return true, nil
}

func localErr(err error) error {
	if isNoSpace(err) {
		return sdk.Errorf(sdk.KindQuota, false, "free space on the target disk, then resume", "%v", err)
	}
	if errors.Is(err, fs.ErrPermission) {
		return sdk.Errorf(sdk.KindAuth, false, "make the target directory writable", "%v", err)
	}
	return err
}

// tmpName is a short temporary name beside the final file (a long name
// plus a suffix would pass the 255-byte limit).
func tmpName(final, rel string) string {
	sum := sha1.Sum([]byte(rel))
	return filepath.Join(filepath.Dir(final), ".nc-"+hex.EncodeToString(sum[:8])+".part")
}

func (t *localTarget) put(ctx context.Context, src *srcFile, rel string) (ledgerLine, error) {
	final := t.abs(rel)
	parent := ""
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		parent = rel[:i]
	}
	if _, fresh := t.fresh.Load(parent); !fresh {
		if _, err := os.Lstat(final); err == nil {
			return ledgerLine{}, &errSkip{"exists at the target"}
		}
	}
	var (
		f   *os.File
		tmp string // "" for an unnamed file
		err error
	)
	if !t.noAnon.Load() {
		f, err = createAnon(filepath.Dir(final))
		if errors.Is(err, errNoAnon) {
			t.noAnon.Store(true)
		} else if err != nil {
			return ledgerLine{}, localErr(err)
		}
	}
	if f == nil {
		tmp = tmpName(final, rel)
		if f, err = os.Create(tmp); err != nil {
			return ledgerLine{}, localErr(err)
		}
		defer os.Remove(tmp) // after a failure; gone once renamed
	}
	defer f.Close()
	n, err := fill(src, f, t.rangedMin)
	src.close()
	if err != nil {
		return ledgerLine{}, localErr(err)
	}
	if err := src.verify(n); err != nil {
		return ledgerLine{}, err
	}
	mt := src.e.MTime
	// A file that appeared meanwhile is not replaced.
	if tmp == "" {
		err = linkAnon(f, final, mt)
	} else {
		err = nameTemp(f, tmp, final, mt)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ledgerLine{}, &errSkip{"exists at the target"}
		}
		return ledgerLine{}, localErr(err)
	}
	return ledgerLine{Op: "file", Path: rel, Size: n, SHA1: src.sum(), MTime: unixOrZero(mt)}, nil
}

// errNoAnon says the file system cannot create unnamed files.
var errNoAnon = errors.New("unnamed temporary files are not supported here")

// nameTemp closes a named temporary file, sets its mtime (when not zero)
// and renames it to final unless final exists (fs.ErrExist).
func nameTemp(f *os.File, tmp, final string, mt time.Time) error {
	if err := f.Close(); err != nil {
		return err
	}
	if !mt.IsZero() {
		if err := os.Chtimes(tmp, mt, mt); err != nil {
			return err
		}
	}
	return renameNoReplace(tmp, final)
}

// linkNoReplace moves tmp to final with a hard link, which fails when
// final exists; where links are not supported it renames.
func linkNoReplace(tmp, final string) error {
	err := os.Link(tmp, final)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, fs.ErrExist) {
		return fs.ErrExist
	}
	if _, serr := os.Lstat(final); serr == nil {
		return fs.ErrExist
	}
	return os.Rename(tmp, final)
}

// fill writes the source file into f: large files with parallel ranged
// reads where the server allows them, others in one stream.
func fill(src *srcFile, f *os.File, rangedMin int64) (int64, error) {
	if rangedMin > 0 && src.size >= rangedMin {
		n, err := fetchRanged(src, f)
		if !errors.Is(err, errWhole) {
			return n, err
		}
		src.restart()
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	return io.CopyBuffer(f, src, *bp)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (t *localTarget) undoFile(_ context.Context, l ledgerLine, force bool) (string, error) {
	p := t.abs(l.Path)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !force {
		if !st.Mode().IsRegular() {
			return fmt.Sprintf("%s is no longer a regular file", l.Path), nil
		}
		if st.Size() != l.Size {
			return fmt.Sprintf("%s: size %d, the copy left %d", l.Path, st.Size(), l.Size), nil
		}
		sum, err := fileSHA1(p)
		if err != nil {
			return "", err
		}
		if sum != l.SHA1 {
			return fmt.Sprintf("%s: content changed since the copy", l.Path), nil
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return "", nil
}

func fileSHA1(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (t *localTarget) undoDir(_ context.Context, rel string, _ bool) (string, error) {
	p := t.abs(rel)
	err := os.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if ents, rerr := os.ReadDir(p); rerr == nil && len(ents) > 0 {
		// Even forced, what others put there stays.
		return fmt.Sprintf("folder %s holds %d entries the copy did not create", displayRel(rel), len(ents)), nil
	}
	return "", err
}

func displayRel(rel string) string {
	if rel == "" {
		return "(the target root)"
	}
	return rel
}

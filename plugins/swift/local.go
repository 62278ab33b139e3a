package swift

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/sdk"
)

// metaDir holds, beside the containers' directories, one index per
// container: what a file cannot keep (content type, metadata, the
// object's ETag).
const metaDir = ".swift-meta"

// localEntry is one object in a container's index.
type localEntry struct {
	ETag        string            `json:"etag"`           // the source's ETag
	MD5         string            `json:"md5"`            // of the file's bytes
	Bytes       int64             `json:"bytes"`          //
	ContentType string            `json:"content_type"`   //
	Meta        map[string]string `json:"meta,omitempty"` // X-Object-Meta-* (lower-case names, prefix dropped)
	Mtime       float64           `json:"mtime"`          // Unix seconds
	Manifest    string            `json:"manifest,omitempty"`
	SLO         bool              `json:"slo,omitempty"`
}

// localTarget writes to a directory.
type localTarget struct {
	dir string

	mu  sync.Mutex // guards idx and dirty
	idx map[string]map[string]localEntry
	// dirty containers have index changes not yet written.
	dirty map[string]bool
}

func newLocalTarget(dir string) (*localTarget, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "", "target_dir: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, metaDir), 0o755); err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check target_dir", "target_dir: %v", err)
	}
	return &localTarget{dir: abs, idx: map[string]map[string]localEntry{}, dirty: map[string]bool{}}, nil
}

func (t *localTarget) id() string { return "file://" + filepath.ToSlash(t.dir) }

// containerDir is where a container goes; Swift container names have no
// "/", but "." and ".." and the index directory are refused.
func (t *localTarget) containerDir(cont string) (string, error) {
	if cont == "" || cont == "." || cont == ".." || cont == metaDir || strings.ContainsAny(cont, "/\\\x00") {
		return "", sdk.Errorf(sdk.KindInvalid, false, "copy this container to a Swift account", "container name %q cannot be a directory", cont)
	}
	return filepath.Join(t.dir, cont), nil
}

// path maps an object name to a file: its "/" are directories. Names that
// would leave the container's directory, or two names that would share a
// file ("a//b" and "a/b"), are refused.
func (t *localTarget) path(cont, name string) (string, error) {
	d, err := t.containerDir(cont)
	if err != nil {
		return "", err
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\x00") {
			return "", sdk.Errorf(sdk.KindInvalid, false, "copy this container to a Swift account, or rename the object", "object name %q in %s cannot be a file name", name, cont)
		}
	}
	return filepath.Join(d, filepath.FromSlash(trimmed)), nil
}

func (t *localTarget) indexPath(cont string) string {
	return filepath.Join(t.dir, metaDir, cont+".json")
}

func (t *localTarget) ensureContainer(_ context.Context, cont string, _ swift.Headers) (bool, error) {
	d, err := t.containerDir(cont)
	if err != nil {
		return false, err
	}
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return false, nil
	}
	if err := os.Mkdir(d, 0o755); err != nil {
		return false, sdk.Errorf(sdk.KindInvalid, false, "check target_dir", "create %s: %v", d, err)
	}
	return true, nil
}

func (t *localTarget) load(_ context.Context, cont string) error {
	m := map[string]localEntry{}
	b, err := os.ReadFile(t.indexPath(cont))
	if err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			return sdk.Errorf(sdk.KindConflict, false, "remove the damaged index to copy everything again", "index %s: %v", t.indexPath(cont), err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return sdk.Errorf(sdk.KindInvalid, false, "", "index: %v", err)
	}
	t.mu.Lock()
	t.idx[cont] = m
	t.mu.Unlock()
	return nil
}

// has trusts the index when the file still has the size and mtime it
// recorded; otherwise it hashes the file. A name the index does not know
// is copied again (for its metadata), without looking at the disk.
func (t *localTarget) has(cont, name, etag string, size int64) bool {
	t.mu.Lock()
	e, ok := t.idx[cont][name]
	t.mu.Unlock()
	if !ok || e.ETag != unquote(etag) {
		return false
	}
	p, err := t.path(cont, name)
	if err != nil {
		return false
	}
	st, err := os.Stat(p)
	if err != nil || (!st.Mode().IsRegular() && !strings.HasSuffix(name, "/")) {
		return false
	}
	if strings.HasSuffix(name, "/") {
		return true
	}
	if st.Size() != size || e.Bytes != size {
		return false
	}
	if d := st.ModTime().Sub(unixTime(e.Mtime)); d > -time.Millisecond && d < time.Millisecond {
		return true
	}
	// Touched since: the bytes must still be the ones copied.
	sum, err := fileMD5(p)
	return err == nil && sum == e.MD5
}

func fileMD5(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func unixTime(f float64) time.Time {
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}

// put writes to a temporary file beside the final one, hashing as it
// goes, and renames it into place once the bytes match the ETag (or, for
// a large object, once p.body's own checks passed).
// names are the container's files and the index's entries.
func (t *localTarget) names(cont string) []string {
	set := map[string]bool{}
	t.mu.Lock()
	for n := range t.idx[cont] {
		set[n] = true
	}
	t.mu.Unlock()
	if d, err := t.containerDir(cont); err == nil {
		_ = filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				rel, _ := filepath.Rel(d, p)
				set[filepath.ToSlash(rel)] = true
			}
			return nil
		})
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (t *localTarget) put(_ context.Context, p putReq) error {
	dst, err := t.path(p.cont, p.name)
	if err != nil {
		return err
	}
	h := md5.New()
	if strings.HasSuffix(p.name, "/") {
		// A pseudo-directory marker.
		if _, err := io.Copy(h, p.body); err != nil {
			return sdk.Errorf(sdk.KindUnreachable, true, "", "get %s/%s: %v", p.cont, p.name, err)
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return sdk.Errorf(sdk.KindConflict, false, "", "create %s: %v", dst, err)
		}
		if err := checkMD5(p, h); err != nil {
			return err
		}
	} else if err := writeFile(dst, p, h); err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if !p.mtime.IsZero() {
		_ = os.Chtimes(dst, p.mtime, p.mtime)
	}
	st, _ := os.Stat(dst)
	e := localEntry{ETag: unquote(p.etag), MD5: sum, ContentType: p.contentType, Meta: map[string]string{},
		Mtime: float64(p.mtime.UnixNano()) / 1e9}
	if st != nil {
		e.Bytes = st.Size()
		e.Mtime = float64(st.ModTime().UnixNano()) / 1e9
		if st.IsDir() {
			e.Bytes = 0
		}
	}
	for k, v := range p.headers {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-object-meta-") {
			e.Meta[strings.TrimPrefix(lk, "x-object-meta-")] = v
		}
	}
	e.Manifest = p.headers["X-Object-Manifest"]
	e.SLO = p.headers["X-Static-Large-Object"] != ""
	t.mu.Lock()
	if t.idx[p.cont] == nil {
		t.idx[p.cont] = map[string]localEntry{}
	}
	t.idx[p.cont][p.name] = e
	t.dirty[p.cont] = true
	t.mu.Unlock()
	return nil
}

func writeFile(dst string, p putReq, h hash.Hash) error {
	tmp := filepath.Join(filepath.Dir(dst), ".runbook-tmp-"+filepath.Base(dst))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		// The first object of its directory: a stat of the directory for
		// every object would cost more than this second try.
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return sdk.Errorf(sdk.KindConflict, false, "a file may stand where a directory is needed", "create the directory of %s: %v", dst, err)
		}
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	}
	if err != nil {
		return sdk.Errorf(sdk.KindConflict, false, "a file may stand where a directory is needed", "create %s: %v", tmp, err)
	}
	var n int64
	if p.fill != nil {
		n, err = p.fill(f, h)
	} else {
		buf := bufPool.Get().(*[]byte)
		n, err = io.CopyBuffer(io.MultiWriter(f, h), p.body, *buf)
		bufPool.Put(buf)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil && p.size >= 0 && n != p.size {
		err = fmt.Errorf("got %d bytes of %d", n, p.size)
	}
	if err == nil {
		// Before the rename: a file already there stays as it was.
		err = checkMD5(p, h)
	}
	if err != nil {
		_ = os.Remove(tmp)
		var se *sdk.Error
		if errors.As(err, &se) {
			return err
		}
		if isDiskFull(err) {
			return sdk.Errorf(sdk.KindQuota, false, "free space in target_dir", "write %s: %v", dst, err)
		}
		return sdk.Errorf(sdk.KindUnreachable, true, "", "copy %s/%s: %v", p.cont, p.name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return sdk.Errorf(sdk.KindConflict, false, "a directory may stand where the file goes", "rename to %s: %v", dst, err)
	}
	return nil
}

// checkMD5 checks the bytes hashed into h against the ETag of a plain
// object (a large object's body checks its own segments).
func checkMD5(p putReq, h hash.Hash) error {
	if sum := hex.EncodeToString(h.Sum(nil)); !p.large && sum != unquote(p.etag) {
		return sdk.Errorf(sdk.KindConflict, true, "the source sent other bytes than its ETag says: retry", "get %s/%s: MD5 %s, ETag %s", p.cont, p.name, sum, p.etag)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func isDiskFull(err error) bool {
	return strings.Contains(err.Error(), "no space left") || strings.Contains(err.Error(), "quota exceeded")
}

// finish writes the container's index (atomically).
func (t *localTarget) finish(cont string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty[cont] {
		return nil
	}
	b, err := json.MarshalIndent(t.idx[cont], "", " ")
	if err != nil {
		return err
	}
	p := t.indexPath(cont)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return sdk.Errorf(sdk.KindConflict, false, "", "write index: %v", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return sdk.Errorf(sdk.KindConflict, false, "", "write index: %v", err)
	}
	t.dirty[cont] = false
	return nil
}

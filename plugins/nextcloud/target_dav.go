package nextcloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// davTarget writes to a WebDAV server; with nextcloud set it also uses
// X-OC-Mtime and chunked upload v2 for files above chunkSize.
type davTarget struct {
	c         *Client
	root      string // DAV path of the target folder
	user      string // DAV user id, for /remote.php/dav/uploads
	nextcloud bool
	chunkSize int64
	// mtimeLost counts files whose X-OC-Mtime the server did not keep.
	mtimeLost atomic.Int64
	// silentMtime is what a server that does not answer "X-OC-Mtime:
	// accepted" does with the header, learnt from the first file whose
	// mtime is checked: 0 unknown, mtimeHonoured (rclone serve webdav
	// 1.6x+), mtimeIgnored (Apache mod_dav, rclone 1.60).
	silentMtime atomic.Int32
}

const (
	mtimeHonoured = 1
	mtimeIgnored  = 2
)

// checkMtime runs after an upload whose reply did not confirm X-OC-Mtime:
// the first time it reads the file's mtime back to learn whether the
// server keeps it silently; it reports whether the mtime was kept and
// counts the files whose mtime was not.
func (t *davTarget) checkMtime(ctx context.Context, dest string, want time.Time) bool {
	switch t.silentMtime.Load() {
	case mtimeHonoured:
		return true
	case mtimeIgnored:
		t.mtimeLost.Add(1)
		return false
	}
	e, err := t.c.stat(ctx, dest)
	switch {
	case err != nil || e.MTime.IsZero():
		// Cannot tell: say it may be lost.
	case e.MTime.Unix() == want.Unix():
		t.silentMtime.Store(mtimeHonoured)
		return true
	default:
		// A file's own mtime near now says nothing about the server.
		if d := time.Since(want); d > time.Minute || d < -time.Minute {
			t.silentMtime.Store(mtimeIgnored)
		}
	}
	t.mtimeLost.Add(1)
	return false
}

// mtimesLost implements mtimeReporter.
func (t *davTarget) mtimesLost() int64 { return t.mtimeLost.Load() }

// mtimeAccepted says whether a reply confirms X-OC-Mtime.
func mtimeAccepted(resp *http.Response) bool {
	return strings.EqualFold(strings.TrimSpace(resp.Header.Get("X-OC-Mtime")), "accepted")
}

func (t *davTarget) describe() string { return t.c.URL(t.root) }
func (t *davTarget) close()           { t.c.Close() }

func (t *davTarget) mkdir(ctx context.Context, rel string) (bool, error) {
	if rel == "" {
		// Create the target folder's missing ancestors below the DAV root.
		base := filesRoot(t.user)
		parts := strings.Split(strings.Trim(strings.TrimPrefix(t.root, base), "/"), "/")
		created := false
		for i := range parts {
			if parts[i] == "" {
				continue
			}
			c, err := t.mkcol(ctx, base+"/"+strings.Join(parts[:i+1], "/"))
			if err != nil {
				return false, err
			}
			created = c // only the last one is the step's folder
		}
		return created, nil
	}
	return t.mkcol(ctx, joinPath(t.root, rel))
}

func (t *davTarget) mkcol(ctx context.Context, p string) (bool, error) {
	resp, err := t.c.Do(ctx, Request{Method: "MKCOL", Path: p + "/"})
	if err == nil {
		resp.Body.Close()
		return true, nil
	}
	if statusOf(err) == http.StatusMethodNotAllowed {
		return false, nil // exists
	}
	return false, fmt.Errorf("create folder: %w", err)
}

func (t *davTarget) put(ctx context.Context, src *srcFile, rel string) (ledgerLine, error) {
	dest := joinPath(t.root, rel)
	h := http.Header{"If-None-Match": {"*"}}
	if mt := src.e.MTime; !mt.IsZero() {
		h.Set("X-OC-Mtime", strconv.FormatInt(mt.Unix(), 10))
	}
	if src.e.ContentType != "" {
		h.Set("Content-Type", src.e.ContentType)
	}
	var (
		etag      string
		n         int64
		confirmed bool
		err       error
	)
	if t.nextcloud && t.chunkSize > 0 && src.size > t.chunkSize {
		etag, n, confirmed, err = t.chunked(ctx, src, dest, h)
	} else {
		etag, n, confirmed, err = t.single(ctx, src, dest, h)
	}
	src.close()
	if err != nil {
		switch statusOf(err) {
		case http.StatusPreconditionFailed:
			return ledgerLine{}, &errSkip{"exists at the target"}
		case http.StatusConflict:
			return ledgerLine{}, &errSkip{"the target refused it (409 Conflict: a parent is missing or the name is taken)"}
		}
		return ledgerLine{}, err
	}
	mt := unixOrZero(src.e.MTime)
	if mt != 0 && !confirmed {
		if t.checkMtime(ctx, dest, src.e.MTime) {
			// Kept after the reply was made: its ETag is of the file
			// before its mtime was set (rclone serve webdav).
			etag = ""
		} else {
			mt = 0 // the ledger holds the mtime set at the target
		}
	}
	line := ledgerLine{Op: "file", Path: rel, Size: n, SHA1: src.sum(), ETag: etag, MTime: mt}
	if err := src.verify(n); err != nil {
		return line, err // created: undo may remove it
	}
	return line, nil
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// single PUTs a file; confirmed says the reply confirmed X-OC-Mtime.
func (t *davTarget) single(ctx context.Context, src *srcFile, dest string, h http.Header) (etag string, n int64, confirmed bool, err error) {
	var cnt *counter
	// Each attempt (after a 423, 429 or 503) reads the source again.
	size := src.size
	resp, err := t.c.Do(ctx, Request{Method: http.MethodPut, Path: dest, Header: h, Length: size,
		Body: func() (io.Reader, error) {
			if cnt != nil {
				src.restart()
			}
			cnt = &counter{r: src}
			return cnt, nil
		}})
	if err != nil {
		return "", 0, false, err
	}
	resp.Body.Close()
	return replyETag(resp), cnt.n, mtimeAccepted(resp), nil
}

func replyETag(resp *http.Response) string {
	if v := resp.Header.Get("OC-Etag"); v != "" {
		return v
	}
	return resp.Header.Get("ETag")
}

// chunked uploads with Nextcloud's chunking v2: MKCOL an upload folder,
// PUT numbered chunks, MOVE .file onto the destination. A failure aborts
// the upload (DELETE) and the whole file is tried again by the caller.
func (t *davTarget) chunked(ctx context.Context, src *srcFile, dest string, h http.Header) (etag string, n int64, confirmed bool, err error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	upl := "/remote.php/dav/uploads/" + t.user + "/runbook-" + hex.EncodeToString(rnd[:])
	destURL := t.c.URL(dest)
	size := src.size
	base := http.Header{"Destination": {destURL}, "Oc-Total-Length": {strconv.FormatInt(size, 10)}}
	resp, err := t.c.Do(ctx, Request{Method: "MKCOL", Path: upl, Header: base})
	if err != nil {
		return "", 0, false, err
	}
	resp.Body.Close()
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if r, err := t.c.Do(actx, Request{Method: http.MethodDelete, Path: upl, Header: base, NoRetry: true}); err == nil {
			r.Body.Close()
		}
	}
	var sent int64
	for i := 1; sent < size; i++ {
		n := min(t.chunkSize, size-sent)
		cnt := &counter{r: io.LimitReader(src, n)}
		resp, err := t.c.Do(ctx, Request{Method: http.MethodPut, Path: upl + "/" + fmt.Sprintf("%05d", i), Header: base,
			Length: n, NoRetry: true, Body: func() (io.Reader, error) { return cnt, nil }})
		if err != nil {
			abort()
			return "", 0, false, err
		}
		resp.Body.Close()
		if cnt.n != n {
			abort()
			return "", 0, false, sdk.Errorf(sdk.KindUnreachable, true, "retry", "chunk %d: read %d bytes of %d from the source", i, cnt.n, n)
		}
		sent += n
	}
	mh := base.Clone()
	for k, v := range h {
		if k != "If-None-Match" && k != "Content-Type" {
			mh[k] = v
		}
	}
	mh.Set("Overwrite", "F")
	resp, err = t.c.Do(ctx, Request{Method: "MOVE", Path: upl + "/.file", Header: mh})
	if err != nil {
		if statusOf(err) == http.StatusNotFound && sent == size {
			// A 423 made us retry while the server was still merging: the
			// upload folder is gone because the merge finished.
			return "", sent, false, nil
		}
		abort()
		return "", 0, false, err
	}
	resp.Body.Close()
	return replyETag(resp), sent, mtimeAccepted(resp), nil
}

func (t *davTarget) undoFile(ctx context.Context, l ledgerLine, force bool) (string, error) {
	p := joinPath(t.root, l.Path)
	e, err := t.c.stat(ctx, p)
	if kindOf(err) == sdk.KindNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !force {
		if e.Dir {
			return fmt.Sprintf("%s is now a folder", l.Path), nil
		}
		if e.Size != l.Size {
			return fmt.Sprintf("%s: size %d, the copy left %d", l.Path, e.Size, l.Size), nil
		}
		if l.ETag != "" && e.ETag != "" && !sameETag(e.ETag, l.ETag) {
			return fmt.Sprintf("%s: ETag %s, the copy left %s", l.Path, e.ETag, l.ETag), nil
		}
		if l.ETag == "" && l.MTime != 0 && !e.MTime.IsZero() && e.MTime.Unix() != l.MTime {
			return fmt.Sprintf("%s: modified %s, the copy left %s", l.Path, e.MTime.UTC().Format(time.RFC3339), time.Unix(l.MTime, 0).UTC().Format(time.RFC3339)), nil
		}
	}
	resp, err := t.c.Do(ctx, Request{Method: http.MethodDelete, Path: p})
	if err != nil && kindOf(err) != sdk.KindNotFound {
		return "", err
	}
	if resp != nil {
		resp.Body.Close()
	}
	return "", nil
}

func (t *davTarget) undoDir(ctx context.Context, rel string, _ bool) (string, error) {
	p := joinPath(t.root, rel)
	var kids int
	err := t.c.propfind(ctx, p, func(_ entry, self bool) error {
		if !self {
			kids++
		}
		return nil
	})
	if kindOf(err) == sdk.KindNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if kids > 0 {
		// DELETE of a folder is recursive: what others put there stays.
		return fmt.Sprintf("folder %s holds %d entries the copy did not create", displayRel(rel), kids), nil
	}
	resp, err := t.c.Do(ctx, Request{Method: http.MethodDelete, Path: p + "/"})
	if err != nil && kindOf(err) != sdk.KindNotFound {
		return "", err
	}
	if resp != nil {
		resp.Body.Close()
	}
	return "", nil
}

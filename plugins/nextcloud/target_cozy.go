package nextcloud

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// cozyRootID is the id of the root folder of a Cozy instance.
const cozyRootID = "io.cozy.files.root-dir"

// cozyMemMax is the largest file a Cozy upload holds in memory while
// its MD5 is computed (Content-MD5 goes before the body); larger ones are
// spooled to a temporary file.
const cozyMemMax = 1 << 20

// cozyTarget writes into a Cozy instance through its files API:
// POST /files/:dir-id?Type=directory|file&Name=… with Content-MD5, the
// mtime in CreatedAt and UpdatedAt, and a bearer token.
type cozyTarget struct {
	c        *Client
	root     string // Cozy path of the target folder, "/Nextcloud"
	spoolDir string // directory for temporary copies of large files
	ids      sync.Map
}

func newCozyTarget(rawURL, token, root, spool string) (*cozyTarget, error) {
	if token == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give target_token: a token of the Cozy instance with write access to io.cozy.files", "no target_token for the Cozy target")
	}
	c, err := NewClient(rawURL, "", "")
	if err != nil {
		return nil, err
	}
	c.token = token
	return &cozyTarget{c: c, root: "/" + strings.Trim(root, "/"), spoolDir: spool}, nil
}

func (t *cozyTarget) describe() string { return t.c.root.String() + " (Cozy) " + t.root }
func (t *cozyTarget) close()           { t.c.Close() }

// cozyPath is the Cozy path of a path relative to the target folder.
func (t *cozyTarget) cozyPath(rel string) string { return path.Join(t.root, rel) }

// cozyDoc is the JSON:API document the files API answers with.
type cozyDoc struct {
	Data struct {
		ID         string `json:"id"`
		Attributes struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			DirID     string `json:"dir_id"`
			Size      string `json:"size"`
			MD5Sum    string `json:"md5sum"`
			Trashed   bool   `json:"trashed"`
			UpdatedAt string `json:"updated_at"`
		} `json:"attributes"`
		Meta struct {
			Rev string `json:"rev"`
		} `json:"meta"`
		Relationships struct {
			Contents struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			} `json:"contents"`
		} `json:"relationships"`
	} `json:"data"`
}

func (t *cozyTarget) call(ctx context.Context, r Request) (*cozyDoc, error) {
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Accept", "application/vnd.api+json")
	resp, err := t.c.Do(ctx, r)
	if err != nil {
		return nil, t.classify(err)
	}
	defer resp.Body.Close()
	var d cozyDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&d); err != nil {
		return nil, fmt.Errorf("%s %s: the answer is not a files API document: %w", r.Method, r.Path, err)
	}
	return &d, nil
}

// classify adds what the files API's statuses mean.
func (t *cozyTarget) classify(err error) error {
	switch statusOf(err) {
	case http.StatusRequestEntityTooLarge:
		return &sdk.Error{Kind: sdk.KindQuota, Hint: fmt.Sprintf("the Cozy instance %s is out of quota (HTTP 413): free space or raise the quota, then resume", t.c.Host()), Err: err}
	case http.StatusPreconditionFailed:
		// Content-MD5 mismatch: the bytes were damaged on the way.
		return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true, Hint: "the upload arrived damaged (Content-MD5 mismatch); it is sent again", Err: err}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &sdk.Error{Kind: sdk.KindAuth, Hint: fmt.Sprintf("check target_token: a valid token of %s allowed to write io.cozy.files", t.c.Host()), Err: err}
	}
	return err
}

// lookup returns the document at a Cozy path (KindNotFound when none).
func (t *cozyTarget) lookup(ctx context.Context, p string) (*cozyDoc, error) {
	return t.call(ctx, Request{Method: http.MethodGet, Path: "/files/metadata", Query: url.Values{"Path": {p}}, Idempotent: true})
}

// dirID is the id of a folder of the target (relative path).
func (t *cozyTarget) dirID(ctx context.Context, rel string) (string, error) {
	if id, ok := t.ids.Load(rel); ok {
		return id.(string), nil
	}
	p := t.cozyPath(rel)
	if p == "/" {
		return cozyRootID, nil
	}
	d, err := t.lookup(ctx, p)
	if err != nil {
		return "", err
	}
	if d.Data.Attributes.Type != "directory" {
		return "", &errSkip{"a file of that name exists at the target"}
	}
	t.ids.Store(rel, d.Data.ID)
	return d.Data.ID, nil
}

func parentRel(rel string) string {
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		return rel[:i]
	}
	return ""
}

func (t *cozyTarget) mkdir(ctx context.Context, rel string) (bool, error) {
	if rel == "" {
		// The target folder and its missing ancestors.
		if _, err := t.dirID(ctx, ""); kindOf(err) != sdk.KindNotFound {
			return false, err
		}
		parts := strings.Split(strings.Trim(t.root, "/"), "/")
		parent, created := cozyRootID, false
		for i := range parts {
			p := "/" + strings.Join(parts[:i+1], "/")
			d, err := t.lookup(ctx, p)
			if kindOf(err) == sdk.KindNotFound {
				d, err = t.createDir(ctx, parent, parts[i])
				created = err == nil
			} else {
				created = false
			}
			if err != nil {
				return false, fmt.Errorf("create folder %s: %w", p, err)
			}
			parent = d.Data.ID
		}
		t.ids.Store("", parent)
		return created, nil // only the last one is the step's folder
	}
	pid, err := t.dirID(ctx, parentRel(rel))
	if err != nil {
		return false, err
	}
	d, err := t.createDir(ctx, pid, path.Base(rel))
	if statusOf(err) == http.StatusConflict {
		_, err := t.dirID(ctx, rel) // exists: a folder, or a file (skipped)
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("create folder: %w", err)
	}
	t.ids.Store(rel, d.Data.ID)
	return true, nil
}

func (t *cozyTarget) createDir(ctx context.Context, parentID, name string) (*cozyDoc, error) {
	return t.call(ctx, Request{Method: http.MethodPost, Path: "/files/" + parentID,
		Query: url.Values{"Type": {"directory"}, "Name": {name}}})
}

// spooled is a file's content read from the source, in memory or in a
// temporary file, with its MD5.
type spooled struct {
	mem  []byte
	f    *os.File
	n    int64
	hash hash.Hash
}

func (s *spooled) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.LimitReader(s.f, s.n), nil
}

func (s *spooled) release() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// spool reads the whole source file, verifying it, before the upload:
// Content-MD5 must be known when the request starts.
func (t *cozyTarget) spool(src *srcFile) (*spooled, error) {
	s := &spooled{hash: md5.New()}
	var w io.Writer
	var buf *bytes.Buffer
	if src.size <= cozyMemMax {
		buf = bytes.NewBuffer(make([]byte, 0, src.size+1))
		w = buf
	} else {
		if err := os.MkdirAll(t.spoolDir, 0o700); err != nil {
			return nil, err
		}
		f, err := os.CreateTemp(t.spoolDir, "cozy-*.part")
		if err != nil {
			return nil, localErr(err)
		}
		s.f, w = f, f
	}
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(w, s.hash), src, *bp)
	bufPool.Put(bp)
	s.n = n
	if buf != nil {
		s.mem = buf.Bytes()
	}
	if err != nil {
		s.release()
		return nil, localErr(err)
	}
	if err := src.verify(n); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// cozyTime is a time as the files API's date parameters take it.
func cozyTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (t *cozyTarget) put(ctx context.Context, src *srcFile, rel string) (ledgerLine, error) {
	pid, err := t.dirID(ctx, parentRel(rel))
	if err != nil {
		return ledgerLine{}, err
	}
	sp, err := t.spool(src)
	src.close()
	if err != nil {
		return ledgerLine{}, err
	}
	defer sp.release()
	sum := base64.StdEncoding.EncodeToString(sp.hash.Sum(nil))
	q := url.Values{"Type": {"file"}, "Name": {path.Base(rel)}}
	if mt := src.e.MTime; !mt.IsZero() {
		q.Set("CreatedAt", cozyTime(mt))
		q.Set("UpdatedAt", cozyTime(mt))
	}
	ct := src.e.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := http.Header{"Content-Md5": {sum}, "Content-Type": {ct}}
	d, err := t.call(ctx, Request{Method: http.MethodPost, Path: "/files/" + pid, Query: q, Header: h, Length: sp.n, Body: sp.reader})
	if err != nil {
		if statusOf(err) == http.StatusConflict {
			return ledgerLine{}, &errSkip{"exists at the target (409: the name is taken)"}
		}
		return ledgerLine{}, err
	}
	line := ledgerLine{Op: "file", Path: rel, Size: sp.n, SHA1: src.sum(), ETag: d.Data.Meta.Rev, MTime: unixOrZero(src.e.MTime),
		ID: d.Data.ID, MD5: sum}
	if got := d.Data.Attributes.MD5Sum; got != "" && got != sum {
		return line, fmt.Errorf("the target stored MD5 %s, the copy sent %s", got, sum)
	}
	if got := d.Data.Attributes.Size; got != "" && got != strconv.FormatInt(sp.n, 10) {
		return line, fmt.Errorf("the target stored %s bytes, the copy sent %d", got, sp.n)
	}
	return line, nil
}

// get reads a file or folder by id (nil when it is gone or trashed).
func (t *cozyTarget) get(ctx context.Context, id string, q url.Values) (*cozyDoc, error) {
	d, err := t.call(ctx, Request{Method: http.MethodGet, Path: "/files/" + id, Query: q, Idempotent: true})
	if kindOf(err) == sdk.KindNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Data.Attributes.Trashed {
		return nil, nil
	}
	return d, nil
}

// trash sends a file or folder to the Cozy trash, only if its revision is
// still rev (empty: whatever it is); false when it changed meanwhile.
func (t *cozyTarget) trash(ctx context.Context, id, rev string) (bool, error) {
	h := http.Header{}
	if rev != "" {
		h.Set("If-Match", rev)
	}
	_, err := t.call(ctx, Request{Method: http.MethodDelete, Path: "/files/" + id, Header: h})
	switch {
	case err == nil, kindOf(err) == sdk.KindNotFound:
		return true, nil
	case statusOf(err) == http.StatusPreconditionFailed && rev != "":
		return false, nil
	}
	return false, err
}

func (t *cozyTarget) undoFile(ctx context.Context, l ledgerLine, force bool) (string, error) {
	id := l.ID
	if id == "" {
		return "", fmt.Errorf("%s: the ledger has no Cozy id", l.Path)
	}
	d, err := t.get(ctx, id, nil)
	if err != nil || d == nil {
		return "", err
	}
	a := d.Data.Attributes
	rev := d.Data.Meta.Rev
	if !force {
		switch {
		case a.Type != "file":
			return fmt.Sprintf("%s is no longer a file", l.Path), nil
		case a.Name != path.Base(l.Path):
			return fmt.Sprintf("%s was renamed to %s since the copy", l.Path, a.Name), nil
		case a.Size != strconv.FormatInt(l.Size, 10):
			return fmt.Sprintf("%s: size %s, the copy left %d", l.Path, a.Size, l.Size), nil
		case l.MD5 != "" && a.MD5Sum != l.MD5:
			return fmt.Sprintf("%s: content changed since the copy (MD5 %s, the copy left %s)", l.Path, a.MD5Sum, l.MD5), nil
		}
	} else {
		rev = ""
	}
	ok, err := t.trash(ctx, id, rev)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("%s changed during the undo", l.Path), nil
	}
	return "", nil
}

func (t *cozyTarget) undoDir(ctx context.Context, rel string, _ bool) (string, error) {
	d, err := t.lookup(ctx, t.cozyPath(rel))
	if kindOf(err) == sdk.KindNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if d.Data.Attributes.Type != "directory" {
		return fmt.Sprintf("%s is now a file", displayRel(rel)), nil
	}
	full, err := t.get(ctx, d.Data.ID, url.Values{"page[limit]": {"1"}})
	if err != nil || full == nil {
		return "", err
	}
	if n := len(full.Data.Relationships.Contents.Data); n > 0 {
		// Trashing a folder takes what is inside: what others put there stays.
		return fmt.Sprintf("folder %s holds entries the copy did not create", displayRel(rel)), nil
	}
	ok, err := t.trash(ctx, d.Data.ID, full.Data.Meta.Rev)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("folder %s changed during the undo", displayRel(rel)), nil
	}
	return "", nil
}

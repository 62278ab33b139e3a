package swift

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// putReq is one object to write at the target.
type putReq struct {
	cont, name  string
	body        io.Reader
	size        int64  // -1 when unknown
	etag        string // the source's ETag: the MD5 of a plain object
	large       bool   // a large object's content: etag is not an MD5
	contentType string
	headers     swift.Headers
	mtime       time.Time
	// fill, when set, writes the body into the local file (instead of
	// copying body) and hashes it into sum; it returns the bytes written.
	fill func(f *os.File, sum hash.Hash) (int64, error)
}

// target is where a copy goes: a Swift account or a local directory.
type target interface {
	// id names the target in the undo state (no credentials).
	id() string
	// ensureContainer creates the container if missing and says whether
	// it did.
	ensureContainer(ctx context.Context, cont string, h swift.Headers) (bool, error)
	// load reads what the container holds, for has.
	load(ctx context.Context, cont string) error
	// has tells whether the object is there with this ETag and size.
	has(cont, name, etag string, size int64) bool
	// names are the container's objects as load found them.
	names(cont string) []string
	// put writes an object, checking its bytes.
	put(ctx context.Context, p putReq) error
	// finish is called once the container's copy ended.
	finish(cont string) error
}

func openTarget(ctx context.Context, in cty.Value) (target, error) {
	if dir := ctyx.StringAttr(in, "target_dir"); dir != "" {
		return newLocalTarget(dir)
	}
	c, err := connFrom(in, "target_").connect(ctx)
	if err != nil {
		return nil, err
	}
	return &swiftTarget{c: c, listing: map[string]map[string]entry{}}, nil
}

type entry struct {
	hash  string
	bytes int64
}

// swiftTarget writes to a Swift account.
type swiftTarget struct {
	c *swift.Connection

	mu      sync.Mutex // guards listing
	listing map[string]map[string]entry
}

func (t *swiftTarget) id() string { return t.c.StorageUrl }

func (t *swiftTarget) ensureContainer(ctx context.Context, cont string, h swift.Headers) (bool, error) {
	_, _, err := t.c.Container(ctx, cont)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, swift.ContainerNotFound) {
		return false, classify(err, "target container "+cont)
	}
	if err := t.c.ContainerCreate(ctx, cont, h); err != nil {
		return false, classify(err, "create target container "+cont)
	}
	return true, nil
}

func (t *swiftTarget) load(ctx context.Context, cont string) error {
	m := map[string]entry{}
	err := walkObjects(ctx, t.c, cont, &swift.ObjectsOpts{}, func(o swift.Object) error {
		h := o.Hash
		if o.SLOHash != "" {
			h = o.SLOHash
		}
		m[o.Name] = entry{hash: unquote(h), bytes: o.Bytes}
		return nil
	})
	if err != nil {
		return classify(err, "list target container "+cont)
	}
	t.mu.Lock()
	t.listing[cont] = m
	t.mu.Unlock()
	return nil
}

func (t *swiftTarget) lookup(cont, name string) (entry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.listing[cont][name]
	return e, ok
}

func (t *swiftTarget) remember(cont, name string, e entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listing[cont] == nil {
		t.listing[cont] = map[string]entry{}
	}
	t.listing[cont][name] = e
}

func (t *swiftTarget) has(cont, name, etag string, size int64) bool {
	e, ok := t.lookup(cont, name)
	return ok && e.hash == unquote(etag) && e.bytes == size
}

// smallObject is the size up to which an object is read into memory
// before its PUT: the PUT can then be sent again after a refused token.
const smallObject = 4 << 20

func (t *swiftTarget) names(cont string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.listing[cont]))
	for n := range t.listing[cont] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (t *swiftTarget) put(ctx context.Context, p putReq) error {
	h := swift.Headers{}
	for k, v := range p.headers {
		h[k] = v
	}
	body := p.body
	if p.size >= 0 && p.size <= smallObject {
		buf := make([]byte, p.size)
		if _, err := io.ReadFull(p.body, buf); err != nil {
			return sdk.Errorf(sdk.KindUnreachable, true, "", "read %s/%s from the source: %v", p.cont, p.name, err)
		}
		if sum := md5.Sum(buf); !p.large && hex.EncodeToString(sum[:]) != p.etag {
			return sdk.Errorf(sdk.KindConflict, true, "the source sent other bytes than its ETag says: retry", "get %s/%s: MD5 %x, ETag %s", p.cont, p.name, sum, p.etag)
		}
		body = bytes.NewReader(buf)
	}
	if p.size >= 0 {
		h["Content-Length"] = strconv.FormatInt(p.size, 10)
	}
	ct := p.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if _, err := t.c.ObjectPut(ctx, p.cont, p.name, body, true, p.etag, ct, h); err != nil {
		return classify(err, "put "+p.cont+"/"+p.name)
	}
	t.remember(p.cont, p.name, entry{hash: p.etag, bytes: p.size})
	return nil
}

func (t *swiftTarget) finish(string) error { return nil }

package swift

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"net/url"
	"strings"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/sdk"
)

// segment is one part of a large object.
type segment struct {
	cont, name string
	etag       string
	size       int64
}

// sloEntry is a manifest line as `multipart-manifest=get&format=raw`
// gives it and `multipart-manifest=put` takes it.
type sloEntry struct {
	Path      string `json:"path"`
	Etag      string `json:"etag"`
	SizeBytes int64  `json:"size_bytes"`
	Range     string `json:"range,omitempty"`
}

// call runs a request on the storage URL, following re-authentication.
func call(ctx context.Context, c *swift.Connection, p swift.RequestOpts) (*[]byte, swift.Headers, error) {
	p.OnReAuth = func() (string, error) { return c.StorageUrl, nil }
	resp, h, err := c.Call(ctx, c.StorageUrl, p)
	if err != nil {
		return nil, h, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return &b, h, err
}

// segments reads a large object's manifest: an SLO's list, or a DLO's
// segment container listed with its prefix.
func segmentsOf(ctx context.Context, c *swift.Connection, cont, name string, h swift.Headers) ([]segment, []sloEntry, error) {
	if h["X-Static-Large-Object"] != "" {
		b, _, err := call(ctx, c, swift.RequestOpts{Container: cont, ObjectName: name, Operation: "GET",
			Parameters: url.Values{"multipart-manifest": {"get"}, "format": {"raw"}}})
		if err != nil {
			return nil, nil, classify(err, "get the manifest of "+cont+"/"+name)
		}
		var entries []sloEntry
		if err := json.Unmarshal(*b, &entries); err != nil {
			return nil, nil, sdk.Errorf(sdk.KindInternal, false, "", "manifest of %s/%s: %v", cont, name, err)
		}
		var segs []segment
		for _, e := range entries {
			if e.Range != "" {
				return nil, nil, sdk.Errorf(sdk.KindInvalid, false, "copy this object by hand", "%s/%s: SLO segments with ranges are not supported", cont, name)
			}
			sc, sn, ok := strings.Cut(strings.TrimPrefix(e.Path, "/"), "/")
			if !ok {
				return nil, nil, sdk.Errorf(sdk.KindInternal, false, "", "manifest of %s/%s: bad path %q", cont, name, e.Path)
			}
			segs = append(segs, segment{cont: sc, name: sn, etag: unquote(e.Etag), size: e.SizeBytes})
		}
		return segs, entries, nil
	}
	m := h["X-Object-Manifest"]
	if dec, err := url.PathUnescape(m); err == nil {
		m = dec
	}
	sc, prefix, ok := strings.Cut(m, "/")
	if !ok {
		return nil, nil, sdk.Errorf(sdk.KindInternal, false, "", "%s/%s: bad X-Object-Manifest %q", cont, name, m)
	}
	var segs []segment
	err := walkObjects(ctx, c, sc, &swift.ObjectsOpts{Prefix: prefix}, func(o swift.Object) error {
		segs = append(segs, segment{cont: sc, name: o.Name, etag: unquote(o.Hash), size: o.Bytes})
		return nil
	})
	if err != nil {
		return nil, nil, classify(err, "list the segments of "+cont+"/"+name)
	}
	return segs, nil, nil
}

// largeETag is Swift's ETag of a large object: the MD5 of its segments'
// ETags.
func largeETag(segs []segment) string {
	h := md5.New()
	for _, s := range segs {
		io.WriteString(h, s.etag)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// copyLarge copies a DLO or SLO: to Swift as its segments (each checked)
// and a new manifest whose ETag must be the source's; to a directory as
// one file whose every segment is checked against its ETag.
func (r *copyRun) copyLarge(ctx context.Context, o obj) error {
	_, h, err := r.src.Object(ctx, o.cont, o.name)
	if err != nil {
		return classify(err, "head "+o.cont+"/"+o.name)
	}
	segs, entries, err := segmentsOf(ctx, r.src, o.cont, o.name, h)
	if err != nil {
		return err
	}
	want := unquote(h["Etag"])
	if got := largeETag(segs); got != want {
		return sdk.Errorf(sdk.KindConflict, true, "the segments changed while copying: retry", "%s/%s: segments' ETag %s, manifest's %s", o.cont, o.name, got, want)
	}
	var size int64
	for _, s := range segs {
		size += s.size
	}
	o.bytes, o.hash = size, want
	hdr := copyHeaders(h)
	if st, ok := r.dst.(*swiftTarget); ok {
		return r.largeToSwift(ctx, st, o, h, hdr, segs, entries)
	}
	if r.dst.has(o.cont, o.name, want, size) {
		r.skip(o)
		return nil
	}
	f, _, err := r.src.ObjectOpen(ctx, o.cont, o.name, false, nil)
	if err != nil {
		return classify(err, "get "+o.cont+"/"+o.name)
	}
	defer f.Close()
	if m := h["X-Object-Manifest"]; m != "" {
		hdr["X-Object-Manifest"] = m
	} else {
		hdr["X-Static-Large-Object"] = "True"
	}
	err = r.dst.put(ctx, putReq{cont: o.cont, name: o.name, body: &segmentChecker{r: f, segs: segs, what: o.cont + "/" + o.name},
		size: size, etag: want, large: true, contentType: h["Content-Type"], headers: hdr, mtime: mtimeOf(h)})
	if err != nil {
		return err
	}
	r.largeCnt.Add(1)
	r.wrote(o)
	return nil
}

func (r *copyRun) largeToSwift(ctx context.Context, t *swiftTarget, o obj, h, hdr swift.Headers, segs []segment, entries []sloEntry) error {
	for _, s := range segs {
		if _, ok := t.lookup(s.cont, s.name); !ok {
			// A segment container outside the copied ones: make sure it
			// exists and know what it holds.
			t.mu.Lock()
			_, listed := t.listing[s.cont]
			t.mu.Unlock()
			if !listed {
				created, err := t.ensureContainer(ctx, s.cont, nil)
				if err != nil {
					return err
				}
				if created {
					r.mu.Lock()
					r.state.Containers = appendNew(r.state.Containers, s.cont)
					r.mu.Unlock()
				}
				if err := t.load(ctx, s.cont); err != nil {
					return err
				}
				r.noteExisting(s.cont)
			}
		}
		if t.has(s.cont, s.name, s.etag, s.size) {
			r.mark(s.cont, s.name, s.etag, false)
			continue
		}
		if err := r.copyObject(ctx, s.cont, s.name, s.size); err != nil {
			return err
		}
		r.copiedB.Add(s.size)
		r.mark(s.cont, s.name, s.etag, true)
	}
	// The manifest: already there when the target's has the same ETag
	// (and, for a DLO, the same segments' prefix).
	if _, th, err := t.c.Object(ctx, o.cont, o.name); err == nil && unquote(th["Etag"]) == o.hash &&
		th["X-Object-Manifest"] == h["X-Object-Manifest"] && (th["X-Static-Large-Object"] != "") == (h["X-Static-Large-Object"] != "") {
		r.skip(o)
		return nil
	}
	ct := h["Content-Type"]
	var err error
	if h["X-Static-Large-Object"] != "" {
		body, _ := json.Marshal(entries)
		hdr["Content-Type"] = ct
		_, _, err = call(ctx, t.c, swift.RequestOpts{Container: o.cont, ObjectName: o.name, Operation: "PUT",
			Parameters: url.Values{"multipart-manifest": {"put"}}, Headers: hdr, Body: bytes.NewReader(body)})
	} else {
		hdr["X-Object-Manifest"] = h["X-Object-Manifest"]
		_, err = t.c.ObjectPut(ctx, o.cont, o.name, bytes.NewReader(nil), false, "", ct, hdr)
	}
	if err != nil {
		return classify(err, "put the manifest of "+o.cont+"/"+o.name)
	}
	_, th, err := t.c.Object(ctx, o.cont, o.name)
	if err != nil {
		return classify(err, "head the new "+o.cont+"/"+o.name)
	}
	if got := unquote(th["Etag"]); got != o.hash {
		return sdk.Errorf(sdk.KindConflict, true, "", "%s/%s: the new manifest's ETag is %s, the source's %s", o.cont, o.name, got, o.hash)
	}
	t.remember(o.cont, o.name, entry{hash: o.hash, bytes: o.bytes})
	r.largeCnt.Add(1)
	r.wrote(o)
	return nil
}

// segmentChecker reads a large object's content and checks each
// segment's MD5 at its boundary, and the total size at the end.
type segmentChecker struct {
	r    io.Reader
	segs []segment
	what string
	i    int
	off  int64
	h    hash.Hash
}

func (c *segmentChecker) Read(p []byte) (int, error) {
	for c.i < len(c.segs) && c.segs[c.i].size == 0 {
		if err := c.close(); err != nil {
			return 0, err
		}
	}
	if c.i >= len(c.segs) {
		n, err := c.r.Read(p)
		if n > 0 {
			return 0, sdk.Errorf(sdk.KindConflict, true, "", "%s: more bytes than its segments", c.what)
		}
		return 0, err
	}
	if c.h == nil {
		c.h = md5.New()
	}
	if rest := c.segs[c.i].size - c.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.off += int64(n)
	if c.off == c.segs[c.i].size {
		if cerr := c.close(); cerr != nil {
			return n, cerr
		}
	}
	if err == io.EOF && c.i < len(c.segs) {
		return n, sdk.Errorf(sdk.KindUnreachable, true, "", "%s: ended in segment %d of %d", c.what, c.i+1, len(c.segs))
	}
	return n, err
}

func (c *segmentChecker) close() error {
	s := c.segs[c.i]
	h := c.h
	if h == nil {
		h = md5.New()
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.etag {
		return sdk.Errorf(sdk.KindConflict, true, "", "%s: segment %s/%s has MD5 %s, its ETag is %s", c.what, s.cont, s.name, got, s.etag)
	}
	c.i++
	c.off = 0
	c.h = nil
	return nil
}

package nextcloud

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// entry is one file or folder found by PROPFIND.
type entry struct {
	// Path is relative to the walk's root, "/"-separated, decoded ("a b/#1.txt").
	Path        string
	Dir         bool
	Size        int64 // files: getcontentlength; folders: oc:size when the server has it
	ETag        string
	FileID      string
	MTime       time.Time
	ContentType string
	// Checksums is oc:checksums ("SHA1:… MD5:…"), when a client stored one.
	Checksums string
}

// checksum returns the server's checksum for alg ("SHA1", "MD5"), or "".
func (e entry) checksum(alg string) string {
	for _, f := range strings.Fields(e.Checksums) {
		if a, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(a, alg) {
			return strings.ToLower(v)
		}
	}
	return ""
}

// propfindBody asks for the properties Nextcloud and plain WebDAV servers
// have; a server answers 404 in a propstat for those it lacks.
const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">
<d:prop><d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/><d:getcontenttype/>
<oc:fileid/><oc:size/><oc:checksums/></d:prop></d:propfind>`

type xmlProp struct {
	ResourceType struct {
		Collection *struct{} `xml:"DAV: collection"`
	} `xml:"DAV: resourcetype"`
	Length    string `xml:"DAV: getcontentlength"`
	Modified  string `xml:"DAV: getlastmodified"`
	ETag      string `xml:"DAV: getetag"`
	Type      string `xml:"DAV: getcontenttype"`
	FileID    string `xml:"http://owncloud.org/ns fileid"`
	Size      string `xml:"http://owncloud.org/ns size"`
	Checksums struct {
		Values []string `xml:"http://owncloud.org/ns checksum"`
	} `xml:"http://owncloud.org/ns checksums"`
}

type xmlResponse struct {
	Href     string `xml:"DAV: href"`
	Propstat []struct {
		Status string  `xml:"DAV: status"`
		Prop   xmlProp `xml:"DAV: prop"`
	} `xml:"DAV: propstat"`
}

// propfind lists a folder at Depth 1 (never infinity: Nextcloud builds the
// whole tree in memory for it) and calls fn for the folder itself (self =
// true, first) and for each child, as the answer is parsed, so a folder of
// any size is never held in memory. Paths given to fn are relative to dir.
func (c *Client) propfind(ctx context.Context, dir string, fn func(e entry, self bool) error) error {
	return c.propfindDepth(ctx, dir+"/", "1", fn)
}

// stat is a Depth 0 PROPFIND of one file or folder.
func (c *Client) stat(ctx context.Context, p string) (entry, error) {
	var e entry
	err := c.propfindDepth(ctx, p, "0", func(x entry, self bool) error {
		if self {
			e = x
		}
		return nil
	})
	return e, err
}

func (c *Client) propfindDepth(ctx context.Context, target, depth string, fn func(e entry, self bool) error) error {
	dir := strings.TrimSuffix(target, "/")
	resp, err := c.Do(ctx, Request{Method: "PROPFIND", Path: target,
		Header: http.Header{"Depth": {depth}, "Content-Type": {"application/xml; charset=utf-8"}},
		Body:   func() (io.Reader, error) { return strings.NewReader(propfindBody), nil },
		Length: int64(len(propfindBody)), Idempotent: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus {
		return sdk.Errorf(sdk.KindInvalid, false, "check that the URL points at a WebDAV folder",
			"PROPFIND %s: HTTP %d, want 207 Multi-Status", dir, resp.StatusCode)
	}
	base := c.root.Path + dir
	dec := xml.NewDecoder(resp.Body)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return sdk.Errorf(sdk.KindUnreachable, true, "retry; the server's answer was cut", "PROPFIND %s: read answer: %v", dir, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != "DAV:" || se.Name.Local != "response" {
			continue
		}
		var xr xmlResponse
		if err := dec.DecodeElement(&xr, &se); err != nil {
			return sdk.Errorf(sdk.KindUnreachable, true, "retry; the server's answer was cut", "PROPFIND %s: read answer: %v", dir, err)
		}
		e, err := xr.entry(base)
		if err != nil {
			return fmt.Errorf("PROPFIND %s: %w", dir, err)
		}
		if err := fn(e, e.Path == ""); err != nil {
			return err
		}
	}
}

func (xr *xmlResponse) entry(base string) (entry, error) {
	u, err := url.Parse(strings.TrimSpace(xr.Href))
	if err != nil {
		return entry{}, fmt.Errorf("bad href %q: %v", xr.Href, err)
	}
	p := u.Path
	rel, ok := strings.CutPrefix(strings.TrimRight(p, "/"), strings.TrimRight(base, "/"))
	if !ok || (rel != "" && rel[0] != '/') {
		return entry{}, fmt.Errorf("href %q is outside %q", xr.Href, base)
	}
	e := entry{Path: strings.Trim(rel, "/")}
	for _, ps := range xr.Propstat {
		if !strings.Contains(ps.Status, " 200") {
			continue
		}
		pr := ps.Prop
		if pr.ResourceType.Collection != nil {
			e.Dir = true
		}
		if pr.Length != "" {
			e.Size, _ = strconv.ParseInt(strings.TrimSpace(pr.Length), 10, 64)
		}
		if pr.Size != "" && e.Dir {
			e.Size, _ = strconv.ParseInt(strings.TrimSpace(pr.Size), 10, 64)
		}
		if pr.Modified != "" {
			if t, err := http.ParseTime(strings.TrimSpace(pr.Modified)); err == nil {
				e.MTime = t
			}
		}
		if pr.ETag != "" {
			e.ETag = strings.TrimSpace(pr.ETag)
		}
		if pr.Type != "" {
			e.ContentType = pr.Type
		}
		if pr.FileID != "" {
			e.FileID = strings.TrimSpace(pr.FileID)
		}
		if len(pr.Checksums.Values) > 0 {
			e.Checksums = strings.TrimSpace(strings.Join(pr.Checksums.Values, " "))
		}
	}
	return e, nil
}

// walk visits the tree under the DAV folder root with Depth 1 PROPFINDs,
// at most workers at a time. fn is called, from several goroutines at
// once, for every entry below root (paths relative to root), a folder
// before anything inside it. Only folder paths wait in memory.
func (c *Client) walk(ctx context.Context, root string, workers int, fn func(e entry) error) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		queue    = []string{""}
		inFlight = 0
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		cond.Broadcast()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(queue) == 0 && inFlight > 0 && firstErr == nil {
					cond.Wait()
				}
				if firstErr != nil || len(queue) == 0 {
					cond.Broadcast()
					mu.Unlock()
					return
				}
				dir := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				inFlight++
				mu.Unlock()

				err := c.propfind(ctx, joinPath(root, dir), func(e entry, self bool) error {
					if self {
						if !e.Dir {
							return sdk.Errorf(sdk.KindInvalid, false, "give a folder", "%s is a file, not a folder", joinPath(root, dir))
						}
						return nil
					}
					e.Path = strings.TrimPrefix(dir+"/"+e.Path, "/")
					if err := fn(e); err != nil {
						return err
					}
					if e.Dir {
						mu.Lock()
						queue = append(queue, e.Path)
						cond.Signal()
						mu.Unlock()
					}
					return nil
				})
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				inFlight--
				if inFlight == 0 && len(queue) == 0 {
					cond.Broadcast()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

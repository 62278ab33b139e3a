package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync/atomic"

	"github.com/runbookdev/runbook/sdk"
)

// fetcher reads document revisions with their history and attachments,
// through _bulk_get when the server has it and GET ?open_revs otherwise.
type fetcher struct {
	c  *Client
	db string
	// noBulkGet is set once the server has shown it lacks _bulk_get.
	noBulkGet atomic.Bool
}

// fetchedDoc is one revision ready for _bulk_docs?new_edits=false.
type fetchedDoc struct {
	ID  string
	Rev string
	Raw json.RawMessage
}

// Fetch returns the requested revisions (id → revs). Revisions the server
// no longer has (compacted, or purged since _changes) are left out and
// reported in missing.
func (f *fetcher) Fetch(ctx context.Context, want map[string][]string) (docs []fetchedDoc, missing int, err error) {
	if len(want) == 0 {
		return nil, 0, nil
	}
	got := map[string]map[string]bool{}
	add := func(d fetchedDoc) {
		if got[d.ID] == nil {
			got[d.ID] = map[string]bool{}
		}
		if !got[d.ID][d.Rev] {
			got[d.ID][d.Rev] = true
			docs = append(docs, d)
		}
	}
	if !f.noBulkGet.Load() {
		bd, err := f.bulkGet(ctx, want)
		switch {
		case err == nil:
			for _, d := range bd {
				add(d)
			}
		case isUnsupported(err):
			f.noBulkGet.Store(true)
		default:
			return nil, 0, err
		}
	}
	// Whatever _bulk_get did not return (pouchdb-server answers "{}" for
	// some revisions) is asked for one document at a time.
	for id, revs := range want {
		var rest []string
		for _, r := range revs {
			if !got[id][r] {
				rest = append(rest, r)
			}
		}
		if len(rest) == 0 {
			continue
		}
		od, err := f.openRevs(ctx, id, rest)
		if err != nil {
			return nil, 0, err
		}
		for _, d := range od {
			add(d)
		}
		for _, r := range rest {
			if !got[id][r] {
				missing++
			}
		}
	}
	return docs, missing, nil
}

// isUnsupported tells whether err says the endpoint does not exist.
func isUnsupported(err error) bool {
	switch statusOf(err) {
	case 400, 404, 405, 501:
		return true
	}
	return false
}

type idRev struct {
	ID  string `json:"_id"`
	Rev string `json:"_rev"`
}

func (f *fetcher) bulkGet(ctx context.Context, want map[string][]string) ([]fetchedDoc, error) {
	type ref struct {
		ID  string `json:"id"`
		Rev string `json:"rev"`
	}
	var req struct {
		Docs []ref `json:"docs"`
	}
	for id, revs := range want {
		for _, r := range revs {
			req.Docs = append(req.Docs, ref{id, r})
		}
	}
	q := url.Values{"revs": {"true"}, "attachments": {"true"}, "latest": {"true"}}
	body, err := f.c.Bytes(ctx, Request{Method: "POST", Path: dbPath(f.db) + "/_bulk_get", Query: q, Body: req})
	if err != nil {
		return nil, err
	}
	docs, err := parseBulkGet(body)
	if err != nil {
		return nil, f.c.scrub(f.c.classify(fmt.Errorf("POST %s/_bulk_get: read answer: %w", dbPath(f.db), err)))
	}
	return docs, nil
}

func (f *fetcher) openRevs(ctx context.Context, id string, revs []string) ([]fetchedDoc, error) {
	rj, _ := json.Marshal(revs)
	q := url.Values{"revs": {"true"}, "attachments": {"true"}, "latest": {"true"}, "open_revs": {string(rj)}}
	body, err := f.c.Bytes(ctx, Request{Method: "GET", Path: docPath(f.db, id), Query: q})
	if statusOf(err) == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s revisions of %q: %w", f.db, id, err)
	}
	docs, err := parseOpenRevs(body)
	if err != nil {
		return nil, fmt.Errorf("read %s revisions of %q: %w", f.db, id, f.c.scrub(f.c.classify(err)))
	}
	return docs, nil
}

// writeFailure is one document the target refused.
type writeFailure struct {
	ID     string `json:"id"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

var comma = []byte(",")

// maxWriteBytes bounds one _bulk_docs request; bigger batches are split.
const maxWriteBytes = 8 << 20

// BulkDocsReplicated writes revisions with their history as they are
// (new_edits=false). Refused documents are returned, not errors: a batch
// too large for the server is split, and a single document still too large
// is a failure of that document only, as with CouchDB's replicator.
func (c *Client) BulkDocsReplicated(ctx context.Context, db string, docs []json.RawMessage) ([]writeFailure, error) {
	var failures []writeFailure
	start, size := 0, 0
	for i, d := range docs {
		if i > start && size+len(d) > maxWriteBytes {
			f, err := c.bulkDocsSplit(ctx, db, docs[start:i])
			if err != nil {
				return failures, err
			}
			failures = append(failures, f...)
			start, size = i, 0
		}
		size += len(d)
	}
	if start < len(docs) {
		f, err := c.bulkDocsSplit(ctx, db, docs[start:])
		if err != nil {
			return failures, err
		}
		failures = append(failures, f...)
	}
	return failures, nil
}

func (c *Client) bulkDocsSplit(ctx context.Context, db string, docs []json.RawMessage) ([]writeFailure, error) {
	f, err := c.bulkDocsOnce(ctx, db, docs)
	if err == nil || statusOf(err) != 413 {
		return f, err
	}
	if len(docs) == 1 {
		// Too large inline: send the attachments as binary parts.
		var ir idRev
		_ = json.Unmarshal(docs[0], &ir)
		err := c.putMultipart(ctx, db, docs[0])
		switch {
		case err == nil:
			return nil, nil
		case statusOf(err) == 413 || statusOf(err) == 400 || statusOf(err) == 409:
			return []writeFailure{{ID: ir.ID, Error: "too_large", Reason: "the target refused the document's size: " + err.Error()}}, nil
		}
		return nil, err
	}
	h := len(docs) / 2
	a, err := c.bulkDocsSplit(ctx, db, docs[:h])
	if err != nil {
		return a, err
	}
	b, err := c.bulkDocsSplit(ctx, db, docs[h:])
	return append(a, b...), err
}

func (c *Client) bulkDocsOnce(ctx context.Context, db string, docs []json.RawMessage) ([]writeFailure, error) {
	// The documents are sent as they are, not copied into one buffer.
	body := make(Parts, 0, 2*len(docs)+1)
	body = append(body, []byte(`{"new_edits":false,"docs":[`))
	for i, d := range docs {
		if i > 0 {
			body = append(body, comma)
		}
		body = append(body, d)
	}
	body = append(body, []byte("]}"))
	var out []struct {
		ID     string `json:"id"`
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: body}, &out); err != nil {
		return nil, err
	}
	var failures []writeFailure
	for _, r := range out {
		if r.Error != "" {
			failures = append(failures, writeFailure{ID: r.ID, Error: r.Error, Reason: r.Reason})
		}
	}
	return failures, nil
}

// asSDK keeps classified errors and marks others internal.
func asSDK(err error) error {
	if err == nil {
		return nil
	}
	if kindOf(err) != sdk.KindUnknown {
		return err
	}
	return &sdk.Error{Kind: sdk.KindInternal, Err: err}
}

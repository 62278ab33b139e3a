package couchdb

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// Change is one row of _changes?style=all_docs.
type Change struct {
	Seq     json.RawMessage `json:"seq"`
	ID      string          `json:"id"`
	Deleted bool            `json:"deleted"`
	Changes []struct {
		Rev string `json:"rev"`
	} `json:"changes"`
}

// Revs lists the leaf revisions of the change.
func (c Change) Revs() []string {
	out := make([]string, 0, len(c.Changes))
	for _, r := range c.Changes {
		out = append(out, r.Rev)
	}
	return out
}

// ChangesPage is one page of a normal _changes feed.
type ChangesPage struct {
	Results []Change        `json:"results"`
	LastSeq json.RawMessage `json:"last_seq"`
	// Pending is CouchDB 2+'s count of changes after this page (-1 when the
	// server does not say, as pouchdb-server does not).
	Pending int64 `json:"pending"`
}

// seqParam renders a sequence for the since= parameter: CouchDB 2+ uses
// opaque strings, CouchDB 1.x and pouchdb-server integers.
func seqParam(seq json.RawMessage) string {
	s := strings.TrimSpace(string(seq))
	if s == "" || s == "null" {
		return "0"
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if json.Unmarshal(seq, &str) == nil {
			return str
		}
	}
	return s
}

// seqNumber returns the numeric part of a sequence (integers, or the
// "N-opaque" form of CouchDB 2+), for progress estimates only.
func seqNumber(seq json.RawMessage) (int64, bool) {
	s := seqParam(seq)
	if i := strings.IndexByte(s, '-'); i > 0 {
		s = s[:i]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Changes reads one page of the normal feed after since.
func (c *Client) Changes(ctx context.Context, db string, since json.RawMessage, limit int) (ChangesPage, error) {
	q := url.Values{}
	q.Set("style", "all_docs")
	q.Set("feed", "normal")
	q.Set("since", seqParam(since))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	page := ChangesPage{Pending: -1}
	if err := c.JSON(ctx, Request{Method: "GET", Path: dbPath(db) + "/_changes", Query: q}, &page); err != nil {
		return page, err
	}
	if len(page.LastSeq) == 0 {
		if n := len(page.Results); n > 0 {
			page.LastSeq = page.Results[n-1].Seq
		} else {
			page.LastSeq = since
		}
	}
	return page, nil
}

// RevsDiff asks the server which of the given revisions it lacks.
func (c *Client) RevsDiff(ctx context.Context, db string, revs map[string][]string) (map[string][]string, error) {
	var out map[string]struct {
		Missing []string `json:"missing"`
	}
	if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_revs_diff", Body: revs}, &out); err != nil {
		return nil, err
	}
	missing := make(map[string][]string, len(out))
	for id, m := range out {
		if len(m.Missing) > 0 {
			missing[id] = m.Missing
		}
	}
	return missing, nil
}

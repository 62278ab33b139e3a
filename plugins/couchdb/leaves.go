package couchdb

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// leaf is one leaf revision of a document (a branch's tip): live or a
// deletion.
type leaf struct {
	Rev     string
	Deleted bool
	Parent  string         // revision it descends from, "" for a root
	Body    map[string]any // without _rev and _revisions; set when asked
}

// leaves lists every leaf revision of a document (open_revs=all), with
// their bodies and attachments inline when bodies is set. A missing
// document has none.
//
// A leaf the server lists but cannot read back comes as {"missing": rev}
// (PouchDB lists the leaves, then reads each one, and answers so for a
// read that fails). It is read again, and one still unreadable is a
// retryable error: never taken for a revision that is gone, which an undo
// would report as drift and a deletion would silently skip.
func (c *Client) leaves(ctx context.Context, db, id string, bodies bool) ([]leaf, error) {
	for attempt := 1; ; attempt++ {
		out, missing, err := c.readLeaves(ctx, db, id, bodies)
		if err != nil || len(missing) == 0 {
			return out, err
		}
		if attempt == leafReads {
			return nil, sdk.Errorf(sdk.KindUnreachable, true, "the server is overloaded or inconsistent; run the step again",
				"%s/%s: the server lists revisions %s but cannot read them", db, id, strings.Join(missing, ", "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		}
	}
}

// leafReads is how many times leaves reads a document whose listed leaves
// cannot all be read.
const leafReads = 5

// readLeaves is one open_revs=all read: the leaves read, and the revisions
// listed but not read.
func (c *Client) readLeaves(ctx context.Context, db, id string, bodies bool) (out []leaf, missing []string, err error) {
	q := url.Values{"open_revs": {"all"}, "revs": {"true"}}
	if bodies {
		q.Set("attachments", "true")
	}
	var raw []struct {
		OK      map[string]any `json:"ok"`
		Missing string         `json:"missing"`
	}
	err = c.JSON(ctx, Request{Method: "GET", Path: docPath(db, id), Query: q}, &raw)
	if kindOf(err) == sdk.KindNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	out = make([]leaf, 0, len(raw))
	for _, r := range raw {
		if r.OK == nil {
			if r.Missing != "" {
				missing = append(missing, r.Missing)
			}
			continue
		}
		l := leaf{}
		l.Rev, _ = r.OK["_rev"].(string)
		l.Deleted, _ = r.OK["_deleted"].(bool)
		if revs, ok := r.OK["_revisions"].(map[string]any); ok {
			start, _ := revs["start"].(float64)
			ids, _ := revs["ids"].([]any)
			if len(ids) > 1 {
				if p, ok := ids[1].(string); ok {
					l.Parent = fmt.Sprintf("%d-%s", int(start)-1, p)
				}
			}
		}
		if bodies && !l.Deleted {
			delete(r.OK, "_rev")
			delete(r.OK, "_revisions")
			l.Body = r.OK
		}
		out = append(out, l)
	}
	return out, missing, nil
}

// liveLeaves keeps the leaves that are not deletions.
func liveLeaves(ls []leaf) []leaf {
	var out []leaf
	for _, l := range ls {
		if !l.Deleted {
			out = append(out, l)
		}
	}
	return out
}

// driftError is the KindConflict an undo returns when what the step left
// has changed since: what changed, and how to go on.
func driftError(what string, changed []string) error {
	const max = 20
	list := changed
	more := ""
	if len(list) > max {
		more = fmt.Sprintf(" and %d more", len(list)-max)
		list = list[:max]
	}
	return sdk.Errorf(sdk.KindConflict, false,
		"these changed after the step; look at them, then undo by hand or run the rollback with -force to undo over the changes",
		"%s changed since the step: %s%s; nothing undone", what, strings.Join(list, "; "), more)
}

package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/runbookdev/runbook/sdk"
)

// readLocalDocs reads a database's _local documents (replication
// checkpoints and the like, which neither replication nor _changes
// carry): every one where the server lists them (_local_docs, CouchDB 2.2
// and later), and those named in ids (without the "_local/" prefix) in
// any case. listed says whether the server could list them.
func readLocalDocs(ctx context.Context, c *Client, db string, ids []string) (docs map[string]json.RawMessage, listed bool, err error) {
	docs = map[string]json.RawMessage{}
	var page struct {
		Rows []struct {
			ID  string          `json:"id"`
			Doc json.RawMessage `json:"doc"`
		} `json:"rows"`
	}
	lerr := c.JSON(ctx, Request{Method: "GET", Path: dbPath(db) + "/_local_docs", Query: url.Values{"include_docs": {"true"}}}, &page)
	switch kindOf(lerr) {
	case sdk.KindUnknown:
		listed = true
		for _, r := range page.Rows {
			if len(r.Doc) > 0 && string(r.Doc) != "null" {
				docs[strings.TrimPrefix(r.ID, "_local/")] = r.Doc
			}
		}
	case sdk.KindNotFound, sdk.KindInvalid:
		// CouchDB 1.x, pouchdb-server: no listing.
	default:
		return nil, false, fmt.Errorf("list _local documents of %s: %w", db, lerr)
	}
	for _, id := range ids {
		id = strings.TrimPrefix(id, "_local/")
		if _, ok := docs[id]; ok {
			continue
		}
		var raw json.RawMessage
		err := c.JSON(ctx, Request{Method: "GET", Path: docPath(db, "_local/"+id)}, &raw)
		if kindOf(err) == sdk.KindNotFound {
			continue
		}
		if err != nil {
			return nil, listed, fmt.Errorf("read %s/_local/%s: %w", db, id, err)
		}
		docs[id] = raw
	}
	return docs, listed, nil
}

// writeLocalDocs writes _local documents back, over the current ones.
func writeLocalDocs(ctx context.Context, c *Client, db string, docs map[string]json.RawMessage) error {
	ids := make([]string, 0, len(docs))
	for id := range docs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var body map[string]any
		if err := json.Unmarshal(docs[id], &body); err != nil {
			return sdk.Errorf(sdk.KindInvalid, false, "the dump is corrupt; use another copy", "_local/%s in the dump: %v", id, err)
		}
		delete(body, "_rev")
		path := docPath(db, "_local/"+id)
		var cur map[string]any
		if err := c.JSON(ctx, Request{Method: "GET", Path: path}, &cur); err == nil {
			body["_rev"] = cur["_rev"]
		} else if kindOf(err) != sdk.KindNotFound {
			return fmt.Errorf("read %s/_local/%s: %w", db, id, err)
		}
		body["_id"] = "_local/" + id
		if err := c.JSON(ctx, Request{Method: "PUT", Path: path, Body: body, NoRetry: true}, nil); err != nil {
			return fmt.Errorf("write %s/_local/%s: %w", db, id, err)
		}
	}
	return nil
}

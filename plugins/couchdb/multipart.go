package couchdb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
)

// putMultipart writes one revision with its history through
// PUT /db/doc?new_edits=false as multipart/related, the attachments as
// binary parts instead of base64 inside the JSON: how CouchDB's replicator
// sends documents whose inline form is too large for the target.
func (c *Client) putMultipart(ctx context.Context, db string, raw json.RawMessage) error {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("decode document: %w", err)
	}
	id, _ := doc["_id"].(string)
	atts, _ := doc["_attachments"].(map[string]any)
	names := make([]string, 0, len(atts))
	for n := range atts {
		names = append(names, n)
	}
	// json.Marshal writes object keys sorted: the parts follow that order,
	// as CouchDB requires.
	sort.Strings(names)
	var bodies [][]byte
	for _, n := range names {
		a, _ := atts[n].(map[string]any)
		data, ok := a["data"].(string)
		if !ok {
			bodies = append(bodies, nil)
			continue
		}
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return fmt.Errorf("attachment %s of %s: %w", n, id, err)
		}
		delete(a, "data")
		a["follows"] = true
		a["length"] = len(b)
		bodies = append(bodies, b)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{"Content-Type": {"application/json"}}
	pw, _ := mw.CreatePart(h)
	pw.Write(js)
	for i, n := range names {
		if bodies[i] == nil {
			continue
		}
		a, _ := atts[n].(map[string]any)
		ct, _ := a["content_type"].(string)
		if ct == "" {
			ct = "application/octet-stream"
		}
		ph := textproto.MIMEHeader{
			"Content-Type":        {ct},
			"Content-Disposition": {fmt.Sprintf("attachment; filename=%q", n)},
		}
		pw, _ := mw.CreatePart(ph)
		pw.Write(bodies[i])
	}
	mw.Close()
	hdr := http.Header{"Content-Type": {"multipart/related; boundary=\"" + mw.Boundary() + "\""}}
	return c.JSON(ctx, Request{Method: "PUT", Path: docPath(db, id), Query: url.Values{"new_edits": {"false"}},
		Body: buf.Bytes(), Header: hdr}, nil)
}

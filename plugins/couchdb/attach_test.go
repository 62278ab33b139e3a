package couchdb

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runbookdev/runbook/sdk"
)

// TestReplicateAttachmentsByteExact copies documents with random binary
// attachments (several per document, updated ones, ids that need
// escaping) and reads every one back from the target with a plain GET, so
// the check does not depend on the replication's own reader. The second
// case reads the source through a proxy without _bulk_get (as CouchDB
// 1.x): the plugin falls back to GET ?open_revs.
func TestReplicateAttachmentsByteExact(t *testing.T) {
	t.Parallel()
	for _, noBulkGet := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBulkGet=%v", noBulkGet), func(t *testing.T) {
			t.Parallel()
			testAttachmentsByteExact(t, noBulkGet)
		})
	}
}

func testAttachmentsByteExact(t *testing.T, noBulkGet bool) {
	src, dst := servers(t)
	db := dbName(t, "files")
	sc, dc := client(t, src), client(t, dst)
	ctx := tctx(t)
	blobs := map[string]map[string][]byte{}
	var docs []map[string]any
	for i, id := range []string{"plain", `quote"and\backslash`, "unicode-é\u2028", "a/slash", "many"} {
		atts := map[string]any{}
		blobs[id] = map[string][]byte{}
		n := 1
		if id == "many" {
			n = 4
		}
		for j := 0; j < n; j++ {
			b := make([]byte, 1+(i*37+j*101)%3000+j*70000)
			_, _ = rand.Read(b)
			name := fmt.Sprintf("att-%d\"%d.bin", i, j)
			blobs[id][name] = b
			atts[name] = map[string]any{"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(b)}
		}
		docs = append(docs, map[string]any{"_id": id, "i": i, "_attachments": atts})
	}
	seed(t, sc, db, docs)
	// A second revision with a changed attachment.
	d := getDoc(t, sc, db, "plain")
	nb := bytes.Repeat([]byte{0, 255, '"', '\\'}, 5000)
	blobs["plain"]["att-0\"0.bin"] = nb
	d["_attachments"] = map[string]any{"att-0\"0.bin": map[string]any{"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(nb)}}
	if _, err := sc.PutDoc(ctx, db, "plain", d); err != nil {
		t.Fatal(err)
	}
	in := merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}, "batch_size": 2})
	var bulkGets, openRevs atomic.Int64
	if noBulkGet {
		u, _ := url.Parse(src.URL)
		proxy := httputil.NewSingleHostReverseProxy(u)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/_bulk_get"):
				bulkGets.Add(1)
				w.WriteHeader(404)
				_, _ = w.Write([]byte(`{"error":"not_found","reason":"missing"}`))
				return
			case r.URL.Query().Has("open_revs"):
				openRevs.Add(1)
			}
			proxy.ServeHTTP(w, r)
		}))
		defer front.Close()
		in["source_url"] = front.URL
	}
	if _, err := sdk.Local(New()).Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: obj(in)}, &recorder{}); err != nil {
		t.Fatalf("replicate: %v", err)
	}
	// Batches running at once may each try _bulk_get before the first 404
	// is known; 5 documents in batches of 2 make 3 batches.
	if noBulkGet && (bulkGets.Load() < 1 || bulkGets.Load() > 3 || openRevs.Load() != int64(len(blobs))) {
		t.Errorf("%d _bulk_get and %d open_revs requests, want 1 to 3 and %d", bulkGets.Load(), openRevs.Load(), len(blobs))
	}
	for id, atts := range blobs {
		got, err := dc.GetDoc(ctx, db, id, url.Values{"attachments": {"true"}, "revs": {"true"}})
		if err != nil {
			t.Fatalf("target %s: %v", id, err)
		}
		want, _ := sc.GetDoc(ctx, db, id, nil)
		if got["_rev"] != want["_rev"] {
			t.Errorf("%s: rev %v, want %v", id, got["_rev"], want["_rev"])
		}
		if id == "plain" {
			if ids, _ := got["_revisions"].(map[string]any)["ids"].([]any); len(ids) != 2 {
				t.Errorf("%s: history %v, want 2 revisions", id, got["_revisions"])
			}
		}
		ga, _ := got["_attachments"].(map[string]any)
		if len(ga) != len(atts) {
			t.Errorf("%s: %d attachments, want %d", id, len(ga), len(atts))
		}
		for name, b := range atts {
			a, _ := ga[name].(map[string]any)
			s, _ := a["data"].(string)
			data, err := base64.StdEncoding.DecodeString(s)
			if err != nil || !bytes.Equal(data, b) {
				t.Errorf("%s/%s: %d bytes differ from the %d sent (%v)", id, name, len(data), len(b), err)
			}
		}
	}
}

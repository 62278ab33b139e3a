package couchdb

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/sdk"
)

// TestReplicateSplitsAndFallsBackToMultipart puts a proxy in front of the
// target that refuses _bulk_docs bodies over 10 KB (as CouchDB does past
// max_http_request_size): batches are split, documents with attachments go
// through multipart PUTs, and one the target refuses even so is a write
// failure that fails the step.
func TestReplicateSplitsAndFallsBackToMultipart(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seedVaried(t, sc, db)
	target, _ := url.Parse(dst.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var multiparts atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch {
		case strings.HasSuffix(r.URL.Path, "/_bulk_docs") && len(body) > 10<<10:
			w.WriteHeader(413)
			w.Write([]byte(`{"error":"too_large","reason":"the request entity is too large"}`))
			return
		case r.Method == "PUT" && strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/related"):
			if strings.HasSuffix(r.URL.Path, "/bin-4") {
				w.WriteHeader(413)
				w.Write([]byte(`{"error":"too_large","reason":"attachment too large"}`))
				return
			}
			multiparts.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"target_url": front.URL, "databases": []string{db}, "batch_size": 50}))
	res, err := sdk.Local(New()).Apply(tctx(t), "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if kindOf(err) != sdk.KindQuota || !strings.Contains(err.Error(), "1 documents failed") {
		t.Fatalf("err = %v", err)
	}
	if n := outInt(t, res, "doc_write_failures"); n != 1 {
		t.Errorf("doc_write_failures = %d", n)
	}
	if multiparts.Load() != 4 {
		t.Errorf("%d multipart PUTs, want 4", multiparts.Load())
	}
	want := leafDocs(t, sc, db)
	for k := range want {
		if strings.HasPrefix(k, "bin-4 ") {
			delete(want, k)
		}
	}
	if diff := cmp.Diff(want, leafDocs(t, dc, db)); diff != "" {
		t.Errorf("target differs (-src +dst):\n%s", diff)
	}
}

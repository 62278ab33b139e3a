package couchdb

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/backoff"
)

// TestClientBodyAndEncoding checks that a Parts body is sent whole, with
// its length, again on a retry; that answers are asked uncompressed by
// default; and that gzip answers are decoded when asked for.
func TestClientBodyAndEncoding(t *testing.T) {
	type seen struct {
		AcceptEncoding, Body string
		Length               int64
	}
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Header.Get("Accept-Encoding"), string(b), r.ContentLength})
		n := len(got)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write([]byte(`{"ok":"zipped"}`))
			_ = zw.Close()
			return
		}
		_, _ = w.Write([]byte(`{"ok":"plain"}`))
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = backoff.Policy{Base: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out struct{ OK string }
	if err := c.JSON(ctx, Request{Method: "POST", Path: "/db/_bulk_docs", Body: Parts{[]byte(`{"docs":[`), []byte(`{"a":1}`), comma, []byte(`{"b":2}`), []byte(`]}`)}}, &out); err != nil {
		t.Fatal(err)
	}
	if out.OK != "plain" {
		t.Errorf("answer %q", out.OK)
	}
	c.gzip = true
	body, err := c.Bytes(ctx, Request{Method: "GET", Path: "/db/x"})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != `{"ok":"zipped"}` {
		t.Errorf("gzip answer %q", body)
	}
	const sent = `{"docs":[{"a":1},{"b":2}]}`
	want := []seen{{"identity", sent, int64(len(sent))}, {"identity", sent, int64(len(sent))}, {"gzip", "", 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

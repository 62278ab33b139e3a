package couchdb

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/sdk"
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

// TestLeavesRereadsMissing: a leaf the server lists but answers as
// {"missing": rev} (PouchDB, when reading it fails) is read again, never taken
// for a revision that is gone; one that stays unreadable is a retryable
// error.
func TestLeavesRereadsMissing(t *testing.T) {
	const (
		live    = `{"ok":{"_id":"d","_rev":"2-b","n":1,"_revisions":{"start":2,"ids":["b","a"]}}}`
		tomb    = `{"ok":{"_id":"d","_rev":"2-c","_deleted":true,"_revisions":{"start":2,"ids":["c","a"]}}}`
		missing = `{"missing":"2-c"}`
	)
	for _, tc := range []struct {
		name    string
		answers []string // one per read, the last repeated
		want    []leaf
		reads   int
		wantErr bool
	}{
		{"whole", []string{"[" + live + "," + tomb + "]"},
			[]leaf{{Rev: "2-b", Parent: "1-a", Body: map[string]any{"_id": "d", "n": 1.0}}, {Rev: "2-c", Deleted: true, Parent: "1-a"}}, 1, false},
		{"missing once", []string{"[" + live + "," + missing + "]", "[" + live + "," + tomb + "]"},
			[]leaf{{Rev: "2-b", Parent: "1-a", Body: map[string]any{"_id": "d", "n": 1.0}}, {Rev: "2-c", Deleted: true, Parent: "1-a"}}, 2, false},
		{"missing always", []string{"[" + live + "," + missing + "]"}, nil, leafReads, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, reads := answering(t, tc.answers)
			got, err := c.leaves(tctx(t), "db", "d", true)
			if tc.wantErr {
				se := sdk.Classify(err)
				if se == nil || se.Kind != sdk.KindUnreachable || !se.Retryable || !strings.Contains(err.Error(), "2-c") {
					t.Errorf("err = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("leaves (-want +got):\n%s", diff)
			}
			if n := reads(); n != tc.reads {
				t.Errorf("%d reads, want %d", n, tc.reads)
			}
		})
	}
}

// answering is a client of a server answering each request with the next
// of answers (JSON), the last one repeated; reads counts the requests.
func answering(t *testing.T, answers []string) (c *Client, reads func() int) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := answers[min(n, len(answers)-1)]
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(a))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = backoff.Policy{Base: time.Millisecond}
	return c, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

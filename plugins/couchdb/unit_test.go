package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/sdk"
)

func TestMatchSelector(t *testing.T) {
	doc := map[string]any{}
	_ = json.Unmarshal([]byte(`{"_id":"x","docType":"Application","slug":"files","port":9121,"tags":["a","b"],
		"meta":{"owner":{"name":"alice"}},"a.b":1,"nil":null}`), &doc)
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{`{"docType":"Application"}`, true},
		{`{"docType":"User"}`, false},
		{`{"docType":"Application","slug":"files"}`, true},
		{`{"domain":{"$exists":false}}`, true},
		{`{"slug":{"$exists":false}}`, false},
		{`{"slug":{"$ne":"data-browser"}}`, true},
		{`{"domain":{"$ne":"x"}}`, false},
		{`{"port":{"$gt":9000,"$lt":9200}}`, true},
		{`{"port":{"$gte":9121}}`, true},
		{`{"port":{"$lt":"a"}}`, true},
		{`{"slug":{"$gt":1}}`, true},
		{`{"slug":{"$in":["files","contacts"]}}`, true},
		{`{"slug":{"$nin":["files"]}}`, false},
		{`{"tags":{"$all":["a","b"]}}`, true},
		{`{"tags":{"$size":2}}`, true},
		{`{"tags":{"$elemMatch":{"$eq":"b"}}}`, true},
		{`{"tags":{"$allMatch":{"$in":["a"]}}}`, false},
		{`{"meta.owner.name":"alice"}`, true},
		{`{"meta":{"owner":{"name":"alice"}}}`, true},
		{`{"a\\.b":1}`, true},
		{`{"nil":null}`, true},
		{`{"nil":{"$type":"null"}}`, true},
		{`{"port":{"$type":"number"}}`, true},
		{`{"port":{"$mod":[2,1]}}`, true},
		{`{"slug":{"$regex":"^fi"}}`, true},
		{`{"$or":[{"slug":"x"},{"port":9121}]}`, true},
		{`{"$and":[{"slug":"files"},{"port":1}]}`, false},
		{`{"$nor":[{"slug":"x"}]}`, true},
		{`{"$not":{"slug":"files"}}`, false},
		{`{"slug":{"$not":{"$eq":"x"}}}`, true},
	} {
		var sel map[string]any
		if err := json.Unmarshal([]byte(tc.sel), &sel); err != nil {
			t.Fatal(err)
		}
		got, err := matchSelector(sel, doc)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %v (%v), want %v", tc.sel, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"$foo":1}`, `{"a":{"$in":1}}`, `{"a":{"$regex":"("}}`, `{"$or":{}}`} {
		var sel map[string]any
		_ = json.Unmarshal([]byte(bad), &sel)
		if _, err := matchSelector(sel, map[string]any{"a": "x"}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2.1.3", "2.1.10", -1}, {"2.0.5", "2.0.5", 0}, {"2.1.4", "2.1.0", 1},
		{"1.0", "1.0.0", 0}, {"1.0.0-beta", "1.0.0", 1}, {"10.0", "9.9", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"http://admin:s3cret@host:5984/db": "http://***@host:5984/db",
		"http://host:5984":                 "http://host:5984",
		"http://s3cret@host":               "http://***@host",
		"http://admin:s3/cr@t@host/db?x=1": "http://***@host/db?x=1",
		"admin:s3cret@host:5984":           "***@host:5984",
		"http://host:5984/db?rev=1@2":      "http://host:5984/db?rev=1@2",
	} {
		if got := Redact(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := NewClient("ftp://u:pw-in-url@host", "", ""); err == nil || strings.Contains(err.Error(), "pw-in-url") {
		t.Errorf("bad URL error: %v", err)
	}
}

// TestClassify checks each HTTP answer's kind, retryability and hint, and
// that retries happen only for what may succeed later.
func TestClassify(t *testing.T) {
	var calls atomic.Int64
	status := map[string]int{"/401": 401, "/403": 403, "/404": 404, "/409": 409, "/412": 412, "/413": 413, "/507": 507, "/500": 500, "/503": 503, "/400": 400}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if u, p, _ := r.BasicAuth(); u != "admin" || p != "pw-secret-789" {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(status[r.URL.Path])
		fmt.Fprintf(w, `{"error":"e%d","reason":"reason pw-secret-789"}`, status[r.URL.Path])
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, "admin", "pw-secret-789")
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = backoff.Policy{Base: time.Millisecond}
	for _, tc := range []struct {
		path      string
		kind      sdk.Kind
		retryable bool
		calls     int64
	}{
		{"/401", sdk.KindAuth, false, 1}, {"/403", sdk.KindAuth, false, 1},
		{"/404", sdk.KindNotFound, false, 1},
		{"/409", sdk.KindConflict, false, 1}, {"/412", sdk.KindConflict, false, 1},
		{"/413", sdk.KindQuota, false, 1}, {"/507", sdk.KindQuota, false, 1},
		{"/500", sdk.KindUnreachable, true, 4}, {"/503", sdk.KindUnreachable, true, 4},
		{"/400", sdk.KindInvalid, false, 1},
	} {
		calls.Store(0)
		err := c.JSON(context.Background(), Request{Method: "GET", Path: tc.path}, nil)
		se := sdk.Classify(err)
		if se.Kind != tc.kind || se.Retryable != tc.retryable || se.Hint == "" {
			t.Errorf("%s: kind %q retryable %v hint %q", tc.path, se.Kind, se.Retryable, se.Hint)
		}
		if calls.Load() != tc.calls {
			t.Errorf("%s: %d calls, want %d", tc.path, calls.Load(), tc.calls)
		}
		if strings.Contains(err.Error(), "pw-secret-789") {
			t.Errorf("%s: password in error: %v", tc.path, err)
		}
		if tc.kind == sdk.KindAuth && !strings.Contains(err.Error(), "credentials rejected") {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
}

func TestStartSeq(t *testing.T) {
	h := func(s, seq string) historyEntry { return historyEntry{SessionID: s, RecordedSeq: json.RawMessage(seq)} }
	for _, tc := range []struct {
		name     string
		src, dst *checkpointDoc
		want     string
	}{
		{"none", nil, nil, ""},
		{"target lost", &checkpointDoc{SessionID: "a", SourceLastSeq: json.RawMessage("9")}, nil, ""},
		{"same session", &checkpointDoc{SessionID: "a", SourceLastSeq: json.RawMessage(`"9-x"`)}, &checkpointDoc{SessionID: "a"}, `"9-x"`},
		{"common history", &checkpointDoc{SessionID: "c", History: []historyEntry{h("c", "12"), h("b", "7"), h("a", "3")}},
			&checkpointDoc{SessionID: "d", History: []historyEntry{h("d", "20"), h("b", "7")}}, "7"},
		{"nothing common", &checkpointDoc{SessionID: "c", History: []historyEntry{h("c", "12")}},
			&checkpointDoc{SessionID: "d", History: []historyEntry{h("d", "20")}}, ""},
	} {
		if got := string(startSeq(tc.src, tc.dst)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if seqParam(json.RawMessage(`"12-g1AAAA"`)) != "12-g1AAAA" || seqParam(json.RawMessage("12")) != "12" || seqParam(nil) != "0" {
		t.Error("seqParam")
	}
}

// TestMatchDeletions: a _bulk_docs answer is matched by id, whatever its
// order (pouchdb-server reorders it); what it cannot tell apart is left to
// be read back.
func TestMatchDeletions(t *testing.T) {
	part := []deleteItem{{id: "a", rev: "1-a"}, {id: "b", rev: "1-b"}, {id: "c", rev: "1-c"}, {id: "d", rev: "2-d1"}, {id: "d", rev: "2-d2"}, {id: "e", rev: "1-e"}}
	res := []bulkResult{ // another order than sent; no answer for e
		{ID: "c", Rev: "2-cc"},
		{ID: "d", Rev: "3-dx"},
		{ID: "a", Rev: "2-aa"},
		{ID: "b", Error: "conflict", Reason: "Document update conflict."},
		{ID: "d", Rev: "3-dy"},
	}
	tombs, unsure, failed := matchDeletions(part, res)
	if diff := cmp.Diff(map[int]string{0: "2-aa", 2: "2-cc"}, tombs); diff != "" {
		t.Errorf("tombstones (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3, 4, 5}, unsure); diff != "" {
		t.Errorf("unsure (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b@1-b: conflict Document update conflict."}, failed); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
}

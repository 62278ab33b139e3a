package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/couchtest"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// recorder is an sdk.Events that keeps everything and can run a hook on
// each checkpoint.
type recorder struct {
	mu          sync.Mutex // guards every field below
	logs        []string
	checkpoints [][]byte
	sensitive   []bool // per checkpoint: given through CheckpointSensitive
	progress    int
	onCP        func(n int)
	onLog       func(msg string)
}

func (r *recorder) Log(l sdk.Level, msg string) {
	r.mu.Lock()
	r.logs = append(r.logs, l.String()+": "+msg)
	hook := r.onLog
	r.mu.Unlock()
	if hook != nil {
		hook(msg)
	}
}

func (r *recorder) Progress(cur, total int64, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress++
}

func (r *recorder) Checkpoint(b []byte) error { return r.checkpoint(b, false) }

// CheckpointSensitive records a checkpoint the action marked as holding a
// secret (see sdk.CheckpointSensitive).
func (r *recorder) CheckpointSensitive(b []byte) error { return r.checkpoint(b, true) }

func (r *recorder) checkpoint(b []byte, sensitive bool) error {
	r.mu.Lock()
	r.checkpoints = append(r.checkpoints, append([]byte(nil), b...))
	r.sensitive = append(r.sensitive, sensitive)
	n, hook := len(r.checkpoints), r.onCP
	r.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return nil
}

func (r *recorder) last() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.checkpoints) == 0 {
		return nil
	}
	return r.checkpoints[len(r.checkpoints)-1]
}

func (r *recorder) allLogs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// obj builds an inputs object from Go values (string, int, bool, []string,
// map[string]string, cty.Value).
func obj(m map[string]any) cty.Value {
	vals := map[string]cty.Value{}
	for k, v := range m {
		switch x := v.(type) {
		case cty.Value:
			vals[k] = x
		case string:
			vals[k] = cty.StringVal(x)
		case int:
			vals[k] = cty.NumberIntVal(int64(x))
		case bool:
			vals[k] = cty.BoolVal(x)
		case []string:
			vals[k] = strList(x)
		case map[string]string:
			mv := map[string]cty.Value{}
			for a, b := range x {
				mv[a] = cty.StringVal(b)
			}
			vals[k] = cty.MapVal(mv)
		default:
			panic(fmt.Sprintf("obj: unsupported %T", v))
		}
	}
	return cty.ObjectVal(vals)
}

// connIn returns the connection inputs of s with prefix.
func connIn(s *testenv.CouchDB, prefix string) map[string]any {
	return map[string]any{prefix + "url": s.URL, prefix + "username": s.Username, prefix + "password": s.Password}
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func client(t *testing.T, s *testenv.CouchDB) *Client {
	t.Helper()
	c, err := NewClient(s.URL, s.Username, s.Password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seed writes docs in batches with _bulk_docs (new edits).
func seed(t *testing.T, c *Client, db string, docs []map[string]any) {
	t.Helper()
	ctx := tctx(t)
	if _, err := c.CreateDB(ctx, db); err != nil {
		t.Fatalf("create %s: %v", db, err)
	}
	for i := 0; i < len(docs); i += 1000 {
		part := docs[i:min(i+1000, len(docs))]
		var res []map[string]any
		if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: map[string]any{"docs": part}}, &res); err != nil {
			t.Fatalf("seed %s: %v", db, err)
		}
		for _, r := range res {
			if r["error"] != nil {
				t.Fatalf("seed %s: %v", db, r)
			}
		}
	}
}

func smallDocs(n int) []map[string]any {
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = map[string]any{"_id": fmt.Sprintf("doc-%05d", i), "n": i, "kind": "small"}
	}
	return docs
}

// leafDocs reads every leaf revision of every document of db, with
// history and attachments, keyed "id rev".
func leafDocs(t *testing.T, c *Client, db string) map[string]string {
	t.Helper()
	ctx := tctx(t)
	out := map[string]string{}
	var since json.RawMessage
	f := &fetcher{c: c, db: db}
	for {
		page, err := c.Changes(ctx, db, since, 1000)
		if err != nil {
			t.Fatalf("changes %s: %v", db, err)
		}
		if len(page.Results) == 0 {
			return out
		}
		since = page.LastSeq
		want := map[string][]string{}
		for _, ch := range page.Results {
			want[ch.ID] = ch.Revs()
		}
		docs, missing, err := f.Fetch(ctx, want)
		if err != nil || missing > 0 {
			t.Fatalf("fetch %s: %v (missing %d)", db, err, missing)
		}
		for _, d := range docs {
			var m map[string]any
			_ = json.Unmarshal(d.Raw, &m)
			out[d.ID+" "+d.Rev] = canonicalFull(m)
		}
	}
}

func canonicalFull(d map[string]any) string { return couchtest.CanonicalFull(d) }

func getDoc(t *testing.T, c *Client, db, id string) map[string]any {
	t.Helper()
	d, err := c.GetDoc(tctx(t), db, id, url.Values{"attachments": {"true"}})
	if err != nil {
		t.Fatalf("get %s/%s: %v", db, id, err)
	}
	return d
}

func outInt(t *testing.T, res *sdk.Result, name string) int64 {
	t.Helper()
	if res == nil {
		t.Fatalf("no result")
	}
	v := res.Outputs.GetAttr(name)
	if v.IsNull() {
		t.Fatalf("output %s is null", name)
	}
	i, _ := v.AsBigFloat().Int64()
	return i
}

// assertNoSecret fails when the password shows in err or the logs.
func assertNoSecret(t *testing.T, secret string, err error, logs string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the password: %v", err)
	}
	if se := sdk.Classify(err); se != nil && strings.Contains(se.Hint, secret) {
		t.Errorf("hint shows the password: %v", se.Hint)
	}
	if strings.Contains(logs, secret) {
		t.Errorf("logs show the password")
	}
}

func ctyInt(i int) cty.Value { return cty.NumberIntVal(int64(i)) }

func ctyString(s string) cty.Value { return cty.StringVal(s) }

// shared holds the two servers most tests of this package use; tests use
// their own database names (dbName). Tests that stop a server start their
// own.
var shared couchtest.Pair

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

// servers returns the package's shared source and target servers.
func servers(t *testing.T) (*testenv.CouchDB, *testenv.CouchDB) { return shared.Servers(t) }

// dbName is a database name unique to the calling test.
func dbName(t *testing.T, base string) string { return couchtest.DBName(t, base) }

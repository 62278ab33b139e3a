package couchdb

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// seedVaried writes documents of every shape replication must carry:
// plain, with attachments, deleted, conflicted, design.
func seedVaried(t *testing.T, c *Client, db string) {
	t.Helper()
	ctx := tctx(t)
	docs := smallDocs(120)
	for i := 0; i < 5; i++ {
		data := strings.Repeat(fmt.Sprintf("attachment %d ", i), 2000)
		docs = append(docs, map[string]any{"_id": fmt.Sprintf("bin-%d", i), "docType": "Binary",
			"_attachments": map[string]any{"file": map[string]any{"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString([]byte(data))}}})
	}
	docs = append(docs, map[string]any{"_id": "_design/app", "views": map[string]any{"all": map[string]any{"map": "function(doc){emit(doc._id)}"}}})
	seed(t, c, db, docs)
	// A deleted document.
	d := getDoc(t, c, db, "doc-00003")
	if err := c.JSON(ctx, Request{Method: "DELETE", Path: docPath(db, "doc-00003"), Query: map[string][]string{"rev": {d["_rev"].(string)}}}, nil); err != nil {
		t.Fatal(err)
	}
	// A conflicted document: two branches from the same parent.
	for _, b := range []string{"aaa", "bbb"} {
		doc := json.RawMessage(fmt.Sprintf(`{"_id":"conflicted","branch":%q,"_rev":"2-%s","_revisions":{"start":2,"ids":[%q,"root"]}}`, b, b, b))
		if f, err := c.BulkDocsReplicated(ctx, db, []json.RawMessage{doc}); err != nil || len(f) > 0 {
			t.Fatalf("conflict seed: %v %v", err, f)
		}
	}
}

func TestReplicateCopiesEverythingAndUndo(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seedVaried(t, sc, db)
	p := sdk.Local(New())
	ctx := tctx(t)
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}, "batch_size": 50}))
	rec := &recorder{}
	res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, rec)
	if err != nil {
		t.Fatalf("replicate: %v\n%s", err, rec.allLogs())
	}
	if diff := cmp.Diff(leafDocs(t, sc, db), leafDocs(t, dc, db)); diff != "" {
		t.Errorf("target differs from source (-src +dst):\n%s", diff)
	}
	if got := res.Outputs.GetAttr("verified").True(); !got {
		t.Errorf("verified = false")
	}
	if n := outInt(t, res, "doc_write_failures"); n != 0 {
		t.Errorf("doc_write_failures = %d", n)
	}
	if created := res.Outputs.GetAttr("created"); created.LengthInt() != 1 {
		t.Errorf("created = %#v", created)
	}
	if len(rec.checkpoints) == 0 || rec.progress == 0 {
		t.Errorf("no checkpoint (%d) or progress (%d) events", len(rec.checkpoints), rec.progress)
	}
	assertNoSecret(t, src.Password, nil, rec.allLogs())
	assertNoSecret(t, dst.Password, nil, rec.allLogs()+string(res.UndoState)+strings.Join(func() []string {
		var s []string
		for _, c := range rec.checkpoints {
			s = append(s, string(c))
		}
		return s
	}(), ""))

	// The _local checkpoint is on both sides, as CouchDB's replicator does.
	repID := replicationID(sc.URL(), db, dc.URL(), db)
	for _, c := range []*Client{sc, dc} {
		cp, err := readCheckpoint(ctx, c, db, repID)
		if err != nil || cp == nil || len(cp.History) == 0 {
			t.Errorf("checkpoint on %s: %v %+v", c.URL(), err, cp)
		}
	}

	// A rerun starts from the checkpoint: nothing to read.
	res2, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res2, "changes_read"); n != 0 {
		t.Errorf("rerun read %d changes, want 0", n)
	}
	if created := res2.Outputs.GetAttr("created"); created.LengthInt() != 0 {
		t.Errorf("rerun created = %#v", created)
	}

	// The rerun's undo deletes nothing (it created nothing); the first's
	// deletes the database it created.
	if err := p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res2.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dc.Exists(ctx, db); !ok {
		t.Fatal("undo of a run that created nothing deleted the database")
	}
	if err := p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dc.Exists(ctx, db); ok {
		t.Error("undo left the created database")
	}
}

func TestReplicateInterruptAndResume(t *testing.T) {
	t.Parallel()
	const total = 3000
	src, dst := servers(t)
	big := dbName(t, "big")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, big, smallDocs(total))
	p := sdk.Local(New())
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{big}, "batch_size": 100, "workers": 2, "checkpoint_interval": "0s"}))

	ctx, cancel := context.WithCancel(tctx(t))
	rec := &recorder{}
	rec.onCP = func(n int) {
		if n == 8 { // creation + 7 batches
			cancel()
		}
	}
	res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, rec)
	if err == nil {
		t.Fatal("interrupted replication returned no error")
	}
	if k := sdk.Classify(err).Kind; k != sdk.KindCancelled && !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v (kind %s)", err, k)
	}
	first := outInt(t, res, "changes_read")
	if first >= total {
		t.Fatalf("the interrupted run read %d changes: not interrupted", first)
	}
	var st replicateState
	if err := json.Unmarshal(rec.last(), &st); err != nil || st.DBs[big].Seq == nil {
		t.Fatalf("last checkpoint %s: %v", rec.last(), err)
	}
	done, _ := seqNumber(st.DBs[big].Seq)
	if done < 500 {
		t.Fatalf("checkpoint at %d, want at least 500", done)
	}

	// Resume with the journaled checkpoint, as the engine does.
	rec2 := &recorder{}
	res2, err := p.Apply(tctx(t), "replicate", &sdk.ApplyRequest{Inputs: in, Checkpoint: rec.last()}, rec2)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, rec2.allLogs())
	}
	read := outInt(t, res2, "changes_read")
	if read > total-done || read > total-500 {
		t.Errorf("resumed run read %d changes of %d (checkpoint at %d): it did not resume", read, total, done)
	}
	if !strings.Contains(rec2.allLogs(), "resuming from checkpoint") {
		t.Errorf("no resume log:\n%s", rec2.allLogs())
	}
	info, _ := dc.DBInfo(tctx(t), big)
	if info.DocCount != total {
		t.Errorf("target has %d docs, want %d", info.DocCount, total)
	}
	// The database was created by the interrupted attempt: the resumed
	// attempt's undo state still says so.
	var st2 replicateState
	_ = json.Unmarshal(res2.UndoState, &st2)
	if diff := cmp.Diff([]string{big}, st2.Created); diff != "" {
		t.Errorf("created after resume (-want +got):\n%s", diff)
	}
}

func TestReplicateResumesFromLocalCheckpointDocs(t *testing.T) {
	t.Parallel()
	const total = 1500
	src, dst := servers(t)
	db := dbName(t, "db")
	sc := client(t, src)
	seed(t, sc, db, smallDocs(total))
	p := sdk.Local(New())
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{db}, "batch_size": 100, "workers": 1, "checkpoint_interval": "0s", "verify": "none"}))
	ctx, cancel := context.WithCancel(tctx(t))
	rec := &recorder{}
	rec.onCP = func(n int) {
		if n == 6 {
			cancel()
		}
	}
	if _, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, rec); err == nil {
		t.Fatal("no error after cancel")
	}
	// A new run without the engine's checkpoint still resumes, from the
	// _local documents.
	res, err := p.Apply(tctx(t), "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if read := outInt(t, res, "changes_read"); read > total-400 {
		t.Errorf("read %d of %d changes: did not resume from _local checkpoints", read, total)
	}
}

func TestReplicateTargetStopsMidRun(t *testing.T) {
	t.Parallel()
	src, _ := servers(t)
	// This test stops its target: a server of its own.
	dst := testenv.StartCouchDB(t)
	db := dbName(t, "db")
	sc := client(t, src)
	seed(t, sc, db, smallDocs(2000))
	p := sdk.Local(New())
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{db}, "batch_size": 50, "workers": 2, "checkpoint_interval": "0s"}))
	var stopped atomic.Bool
	rec := &recorder{}
	rec.onCP = func(n int) {
		if n == 3 && !stopped.Swap(true) {
			dst.Stop()
		}
	}
	_, err := p.Apply(tctx(t), "replicate", &sdk.ApplyRequest{Inputs: in}, rec)
	se := sdk.Classify(err)
	if err == nil || se.Kind != sdk.KindUnreachable || !se.Retryable || se.Hint == "" {
		t.Fatalf("err = %v (kind %q, retryable %v, hint %q)", err, se.Kind, se.Retryable, se.Hint)
	}
	if !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), strings.TrimPrefix(dst.URL, "http://")) {
		t.Errorf("error does not name the unreachable server: %v", err)
	}
	assertNoSecret(t, dst.Password, err, rec.allLogs())
	assertNoSecret(t, src.Password, err, rec.allLogs())
}

func TestReplicatePrefixAndCopySecurity(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	sc, dc := client(t, src), client(t, dst)
	ctx := tctx(t)
	for _, db := range []string{"alice-example-net/io-cozy-files", "alice-example-net/io-cozy-apps", "bob-example-net/io-cozy-files"} {
		seed(t, sc, db, smallDocs(10))
		sec := json.RawMessage(fmt.Sprintf(`{"admins":{"names":[],"roles":[]},"members":{"names":[%q],"roles":[]}}`, strings.Split(db, "/")[0]))
		if err := putSecurity(ctx, sc, db, sec); err != nil {
			t.Fatal(err)
		}
	}
	p := sdk.Local(New())
	// pouchdb-server drops the "/" from database names in _all_dbs
	// ("a/b" is listed as "ab"), so prefix selection is tested against a
	// fake listing (TestResolveDatabasesPrefix) and the databases are named
	// here; GET and PUT of "a%2Fb" work as on CouchDB.
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{"alice-example-net/io-cozy-files", "alice-example-net/io-cozy-apps"}}))
	res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"alice-example-net/io-cozy-apps", "alice-example-net/io-cozy-files"} {
		if info, err := dc.DBInfo(ctx, db); err != nil || info.DocCount != 10 {
			t.Errorf("%s on the target: %v, %d docs", db, err, info.DocCount)
		}
	}
	if ok, _ := dc.Exists(ctx, "bob-example-net/io-cozy-files"); ok {
		t.Error("another instance's database was replicated")
	}
	if n := outInt(t, res, "docs_written"); n != 20 {
		t.Errorf("docs_written = %d, want 20", n)
	}

	old, _ := getSecurity(ctx, dc, "alice-example-net/io-cozy-files")
	sres, err := p.Apply(ctx, "copy_security", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := getSecurity(ctx, dc, "alice-example-net/io-cozy-files")
	if !strings.Contains(string(got), "alice-example-net") {
		t.Errorf("target _security = %s", got)
	}
	if err := p.Undo(ctx, "copy_security", &sdk.UndoRequest{Inputs: in, UndoState: sres.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	back, _ := getSecurity(ctx, dc, "alice-example-net/io-cozy-files")
	if !sameJSON(old, back) {
		t.Errorf("after undo _security = %s, want %s", back, old)
	}
}

func TestResolveDatabasesPrefix(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `["_users","alice-example-net/io-cozy-files","alice-example-net/io-cozy-apps","alice-example-network/io-cozy-files","bob/x"]`)
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, "", "")
	for _, tc := range []struct {
		in   map[string]any
		want []string
	}{
		{map[string]any{"prefix": "alice-example-net"}, []string{"alice-example-net/io-cozy-apps", "alice-example-net/io-cozy-files"}},
		{map[string]any{"prefix": "alice-example-net/", "databases": []string{"global/instances"}}, []string{"alice-example-net/io-cozy-apps", "alice-example-net/io-cozy-files", "global/instances"}},
		{map[string]any{"databases": []string{"b", "a", "b"}}, []string{"a", "b"}},
	} {
		got, err := resolveDatabases(context.Background(), c, obj(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.in, diff)
		}
	}
	if _, err := resolveDatabases(context.Background(), c, obj(map[string]any{"prefix": "carol"})); kindOf(err) != sdk.KindNotFound {
		t.Errorf("unknown prefix: %v", err)
	}
}

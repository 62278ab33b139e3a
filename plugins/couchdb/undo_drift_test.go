package couchdb

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/sdk"
)

// seedConflict writes id with two conflicting branches (new_edits=false),
// both matching the selector { docType = "Application" }.
func seedConflict(t *testing.T, c *Client, db, id string) {
	t.Helper()
	var res []map[string]any
	docs := []map[string]any{
		{"_id": id, "_rev": "1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "docType": "Application", "slug": "files", "version": "1.0"},
		{"_id": id, "_rev": "1-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "docType": "Application", "slug": "files", "version": "1.1",
			"_attachments": map[string]any{"icon": map[string]any{"content_type": "image/png", "data": "aWNvbg=="}}},
	}
	if err := c.JSON(tctx(t), Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: map[string]any{"docs": docs, "new_edits": false}}, &res); err != nil {
		t.Fatal(err)
	}
}

// liveBodies is every live leaf of id, canonical, sorted.
func liveBodies(t *testing.T, c *Client, db, id string) []string {
	t.Helper()
	ls, err := c.leaves(tctx(t), db, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range liveLeaves(ls) {
		out = append(out, canonical(l.Body))
	}
	sort.Strings(out)
	return out
}

// TestDeleteDocsConflicted deletes a document with two conflicting
// branches: both go (the document is no longer visible), the count is one
// document, and undo brings both branches back.
func TestDeleteDocsConflicted(t *testing.T) {
	t.Parallel()
	_, dst := servers(t)
	db := dbName(t, "cozy")
	c := client(t, dst)
	seed(t, c, db, []map[string]any{{"_id": "other", "docType": "Contact"}})
	seedConflict(t, c, db, "app-files")
	before := liveBodies(t, c, db, "app-files")
	if len(before) != 2 {
		t.Fatalf("seeded %d branches", len(before))
	}
	p := sdk.Local(New())
	ctx := tctx(t)
	in := obj(merge(connIn(dst, ""), map[string]any{"database": db, "selector": `{"docType":"Application"}`, "expect_count": 1}))
	res, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res, "count"); n != 1 {
		t.Errorf("count = %d, want 1 document", n)
	}
	if _, err := c.GetDoc(ctx, db, "app-files", nil); kindOf(err) != sdk.KindNotFound {
		t.Errorf("after delete_docs the document is still visible: %v", err)
	}
	if got := liveBodies(t, c, db, "app-files"); len(got) != 0 {
		t.Errorf("live branches left: %v", got)
	}
	// The same step again finds nothing.
	plan, err := p.Plan(ctx, "delete_docs", &sdk.PlanRequest{Inputs: obj(merge(connIn(dst, ""), map[string]any{"database": db, "selector": `{"docType":"Application"}`}))})
	if err != nil || plan.Counts["delete"] != 0 {
		t.Errorf("plan after delete: %+v, %v", plan, err)
	}
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, liveBodies(t, c, db, "app-files")); diff != "" {
		t.Errorf("undo did not restore every branch (-before +after):\n%s", diff)
	}
	// A second undo (an interrupted rollback run again) changes nothing.
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatalf("second undo: %v", err)
	}
	if got := liveBodies(t, c, db, "app-files"); len(got) != 2 {
		t.Errorf("after a second undo: %d branches", len(got))
	}
}

// TestDeleteDocsUndoDrift: a document recreated after the deletion stops
// the undo with a conflict naming it, and nothing is restored; -force
// restores anyway.
func TestDeleteDocsUndoDrift(t *testing.T) {
	t.Parallel()
	_, dst := servers(t)
	db := dbName(t, "cozy")
	c := client(t, dst)
	seed(t, c, db, []map[string]any{
		{"_id": "app-a", "docType": "Application", "slug": "a"},
		{"_id": "app-b", "docType": "Application", "slug": "b"},
	})
	p := sdk.Local(New())
	ctx := tctx(t)
	in := obj(merge(connIn(dst, ""), map[string]any{"database": db, "selector": `{"docType":"Application"}`}))
	res, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone recreates app-b after the step.
	if _, err := c.PutDoc(ctx, db, "app-b", map[string]any{"docType": "Application", "slug": "b", "new": true}); err != nil {
		t.Fatal(err)
	}
	err = p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), "app-b") || strings.Contains(err.Error(), "app-a") {
		t.Fatalf("undo over a recreated document: %v", err)
	}
	if _, err := c.GetDoc(ctx, db, "app-a", nil); kindOf(err) != sdk.KindNotFound {
		t.Errorf("a refused undo restored app-a: %v", err)
	}
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}, &recorder{}); err != nil {
		t.Fatalf("forced undo: %v", err)
	}
	for _, id := range []string{"app-a", "app-b"} {
		d := getDoc(t, c, db, id)
		if d["new"] != nil || d["slug"] == nil {
			t.Errorf("%s after a forced undo: %v", id, d)
		}
	}
}

// putUndoOver writes a new revision of id, as another writer would.
func putUndoOver(ctx context.Context, t *testing.T, c *Client, db, id string) {
	t.Helper()
	cur, err := c.GetDoc(ctx, db, id, url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	cur["changed_by"] = "someone"
	if _, err := c.PutDoc(ctx, db, id, cur); err != nil {
		t.Fatal(err)
	}
}

// TestReplicateUndoExistingTarget copies into a database that existed:
// undo deletes exactly the revisions the step wrote (the target's own
// documents stay), counts documents and revisions apart, and refuses while
// a copied document was changed since, unless forced.
func TestReplicateUndoExistingTarget(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, []map[string]any{{"_id": "a", "n": 1}, {"_id": "b", "n": 2}})
	seedConflict(t, sc, db, "app-files")
	seed(t, dc, db, []map[string]any{{"_id": "own", "n": 0}})
	ctx := tctx(t)
	// "shared" is on both sides at its first version (an earlier copy);
	// the source has two more since.
	if _, err := sc.PutDoc(ctx, db, "shared", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	first := getDoc(t, sc, db, "shared")
	var wr []map[string]any
	if err := dc.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: map[string]any{"docs": []any{first}, "new_edits": false}}, &wr); err != nil {
		t.Fatal(err)
	}
	for v := 2; v <= 3; v++ {
		cur := getDoc(t, sc, db, "shared")
		cur["v"] = v
		if _, err := sc.PutDoc(ctx, db, "shared", cur); err != nil {
			t.Fatal(err)
		}
	}
	p := sdk.Local(New())
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}}))
	res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if d, r := outInt(t, res, "documents_written"), outInt(t, res, "revisions_written"); d != 4 || r != 5 {
		t.Errorf("documents_written = %d, revisions_written = %d; want 4 and 5", d, r)
	}
	if d := getDoc(t, dc, db, "shared"); d["v"] != float64(3) {
		t.Fatalf("shared on the target after the copy: %v", d)
	}
	// Someone edits a copied document on the target after the step.
	putUndoOver(ctx, t, dc, db, "b")
	err = p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), db+"/b") {
		t.Fatalf("undo over a changed document: %v", err)
	}
	if got := allLive(t, dc, db); !cmp.Equal(got, []string{"a", "app-files", "b", "own", "shared"}) {
		t.Errorf("a refused undo changed the target: %v", got)
	}
	rec := &recorder{}
	if err := p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}, rec); err != nil {
		t.Fatalf("forced undo: %v", err)
	}
	if got := allLive(t, dc, db); !cmp.Equal(got, []string{"b", "own", "shared"}) {
		t.Errorf("after the undo the target holds %v, want the changed b and its own documents", got)
	}
	if d := getDoc(t, dc, db, "shared"); d["v"] != float64(1) || d["_attachments"] != nil {
		t.Errorf("shared after the undo = %v, want its version from before the step (v 1)", d)
	}
	// The same undo again (an interrupted rollback run again) finds it done,
	// except for b, still changed.
	err = p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), db+"/b:") || strings.Contains(err.Error(), "shared") || strings.Contains(err.Error(), db+"/a:") || strings.Contains(err.Error(), "app-files") {
		t.Errorf("second undo: %v", err)
	}
	if !strings.Contains(rec.allLogs(), "left 1 written over since: b@") {
		t.Errorf("the undo does not say what it left:\n%s", rec.allLogs())
	}
	if liveBodies(t, dc, db, "app-files") != nil {
		t.Error("a copied conflict branch is left")
	}
}

// TestReplicateUndoCreatedDrift: a database the step created and someone
// wrote to since is not deleted without force.
func TestReplicateUndoCreatedDrift(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, smallDocs(5))
	p := sdk.Local(New())
	ctx := tctx(t)
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}}))
	res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.PutDoc(ctx, db, "written-later", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	err = p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), db) {
		t.Fatalf("undo of a created database written to since: %v", err)
	}
	if ok, _ := dc.Exists(ctx, db); !ok {
		t.Fatal("a refused undo deleted the database")
	}
	if err := p.Undo(ctx, "replicate", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}, &recorder{}); err != nil {
		t.Fatalf("forced undo: %v", err)
	}
	if ok, _ := dc.Exists(ctx, db); ok {
		t.Error("a forced undo left the database")
	}
}

// allLive lists the ids of db's live documents.
func allLive(t *testing.T, c *Client, db string) []string {
	t.Helper()
	var res struct {
		Rows []struct {
			ID string `json:"id"`
		} `json:"rows"`
	}
	if err := c.JSON(tctx(t), Request{Method: "GET", Path: dbPath(db) + "/_all_docs"}, &res); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res.Rows {
		ids = append(ids, r.ID)
	}
	sort.Strings(ids)
	return ids
}

// TestPutDocAndSecurityUndoDrift: put_doc's and copy_security's undos
// refuse when what they wrote changed since, and go ahead when forced.
func TestPutDocAndSecurityUndoDrift(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "global")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, nil)
	seed(t, dc, db, []map[string]any{{"_id": "inst", "domain": "old.example"}})
	p := sdk.Local(New())
	ctx := tctx(t)

	in := obj(merge(connIn(dst, ""), map[string]any{"database": db, "doc": `{"_id":"inst","domain":"new.example"}`}))
	res, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	putUndoOver(ctx, t, dc, db, "inst")
	err = p.Undo(ctx, "put_doc", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), db+"/inst") {
		t.Fatalf("put_doc undo over a change: %v", err)
	}
	if err := p.Undo(ctx, "put_doc", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}, &recorder{}); err != nil {
		t.Fatalf("forced put_doc undo: %v", err)
	}
	if d := getDoc(t, dc, db, "inst"); d["domain"] != "old.example" || d["changed_by"] != nil {
		t.Errorf("after a forced undo: %v", d)
	}

	if err := putSecurity(ctx, sc, db, []byte(`{"members":{"names":["alice"],"roles":[]}}`)); err != nil {
		t.Fatal(err)
	}
	sin := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}}))
	sres, err := p.Apply(ctx, "copy_security", &sdk.ApplyRequest{Inputs: sin}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	later := []byte(`{"members":{"names":["alice","bob"],"roles":[]}}`)
	if err := putSecurity(ctx, dc, db, later); err != nil {
		t.Fatal(err)
	}
	err = p.Undo(ctx, "copy_security", &sdk.UndoRequest{Inputs: sin, UndoState: sres.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), db+"/_security") {
		t.Fatalf("copy_security undo over a change: %v", err)
	}
	if got, _ := getSecurity(ctx, dc, db); !sameJSON(got, later) {
		t.Errorf("a refused undo changed _security: %s", got)
	}
	if err := p.Undo(ctx, "copy_security", &sdk.UndoRequest{Inputs: sin, UndoState: sres.UndoState, Force: true}, &recorder{}); err != nil {
		t.Fatalf("forced copy_security undo: %v", err)
	}
	if got, _ := getSecurity(ctx, dc, db); sameJSON(got, later) {
		t.Errorf("a forced undo left _security as %s", got)
	}
}

package couchdb

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/couchtest"
	"github.com/runbookdev/runbook/sdk"
)

// cozyV2Source and cozyV2Target are a Cozy v2 instance's database and a
// fresh install on the new server (shared with the runbooks' tests).
func cozyV2Source() []map[string]any { return couchtest.V2Source() }
func cozyV2Target() []map[string]any { return couchtest.V2Target() }

// TestCozyV2Cleanup runs the steps of runbooks/cozy-v2-move.hcl with the
// same selectors and asserts the final documents exactly.
func TestCozyV2Cleanup(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, cozyV2Source())
	seed(t, dc, db, cozyV2Target())
	p := sdk.Local(New())
	ctx := tctx(t)
	target := connIn(dst, "")
	apply := func(action string, in map[string]any) *sdk.Result {
		t.Helper()
		rec := &recorder{}
		res, err := p.Apply(ctx, action, &sdk.ApplyRequest{Inputs: obj(in)}, rec)
		if err != nil {
			t.Fatalf("%s: %v\n%s", action, err, rec.allLogs())
		}
		return res
	}
	// Before the copy: the target's own stack rows and their versions.
	stack := apply("find", merge(target, map[string]any{"database": db, "selector": `{"docType":"StackApplication"}`}))
	var ownIDs []string
	versions := map[string]string{}
	for it := stack.Outputs.GetAttr("docs").ElementIterator(); it.Next(); {
		_, d := it.Element()
		ownIDs = append(ownIDs, d.GetAttr("_id").AsString())
		versions[d.GetAttr("name").AsString()] = d.GetAttr("version").AsString()
	}
	if len(ownIDs) != 3 {
		t.Fatalf("target stack rows = %v", ownIDs)
	}
	apply("replicate", merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}}))

	type del struct {
		name string
		in   map[string]any
		want []string
	}
	dels := []del{
		{"instance without domain", map[string]any{"selector": obj(map[string]any{"docType": "CozyInstance", "domain": obj(map[string]any{"$exists": false})}), "expect_count": 1},
			[]string{"dst-instance"}},
		{"stack rows not newer than the target's", map[string]any{"selector": obj(map[string]any{"docType": "StackApplication"}),
			"exclude_ids": ownIDs, "max_versions": versions, "expect_count": 3},
			[]string{"src-stack-ds", "src-stack-home", "src-stack-proxy"}},
		{"applications but the data browser", map[string]any{"selector": obj(map[string]any{"docType": "Application", "slug": obj(map[string]any{"$ne": "data-browser"})}), "expect_count": 2},
			[]string{"src-app-contacts", "src-app-files"}},
		{"placeholder user", map[string]any{"selector": obj(map[string]any{"docType": "User", "email": "placeholder@new.example"}), "expect_count": 1},
			[]string{"dst-user"}},
	}
	var undos []*sdk.Result
	for _, d := range dels {
		in := merge(target, map[string]any{"database": db}, d.in)
		plan, err := p.Plan(ctx, "delete_docs", &sdk.PlanRequest{Inputs: obj(in)})
		if err != nil || plan.Counts["delete"] != int64(len(d.want)) || len(plan.Warnings) > 0 {
			t.Errorf("%s: plan %+v, %v", d.name, plan, err)
		}
		res := apply("delete_docs", in)
		var got []string
		for it := res.Outputs.GetAttr("deleted").ElementIterator(); it.Next(); {
			_, v := it.Element()
			got = append(got, v.AsString())
		}
		if diff := cmp.Diff(d.want, got); diff != "" {
			t.Errorf("%s: deleted (-want +got):\n%s", d.name, diff)
		}
		undos = append(undos, res)
	}
	final := apply("find", merge(target, map[string]any{"database": db, "selector": `{"docType":{"$in":["CozyInstance","User","Application","StackApplication"]}}`}))
	var left []string
	for it := final.Outputs.GetAttr("docs").ElementIterator(); it.Next(); {
		_, d := it.Element()
		left = append(left, d.GetAttr("_id").AsString())
	}
	sort.Strings(left)
	want := []string{"dst-app-databrowser", "dst-stack-ds", "dst-stack-home", "dst-stack-proxy", "src-app-databrowser", "src-instance", "src-user"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("singleton documents after cleanup (-want +got):\n%s", diff)
	}
	info, _ := dc.DBInfo(ctx, db)
	if info.DocCount != int64(len(want)+2+20+3) { // + device, access, contacts, binaries
		t.Errorf("target doc_count = %d", info.DocCount)
	}
	// Rolling back the cleanup, in reverse order, brings every duplicate
	// back with its content.
	for i := len(dels) - 1; i >= 0; i-- {
		in := merge(target, map[string]any{"database": db}, dels[i].in)
		if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: obj(in), UndoState: undos[i].UndoState}, &recorder{}); err != nil {
			t.Fatalf("undo %s: %v", dels[i].name, err)
		}
	}
	if d := getDoc(t, dc, db, "src-stack-ds"); d["version"] != "2.1.3" || d["lastVersion"] != "2.1.10" {
		t.Errorf("restored stack row = %v", d)
	}
	info, _ = dc.DBInfo(ctx, db)
	if info.DocCount != int64(len(cozyV2Source())+len(cozyV2Target())) {
		t.Errorf("after undo doc_count = %d", info.DocCount)
	}
}

func TestDeleteDocsGuardsAndUndo(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	db := dbName(t, "cozy")
	c := client(t, s)
	seed(t, c, db, cozyV2Source())
	p := sdk.Local(New())
	ctx := tctx(t)
	before := leafDocs(t, c, db)
	in := merge(connIn(s, ""), map[string]any{"database": db, "selector": obj(map[string]any{"docType": obj(map[string]any{"$in": cty.TupleVal([]cty.Value{cty.StringVal("Binary"), cty.StringVal("Device")})})})})

	// The guard: a wrong expect_count deletes nothing.
	_, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: obj(merge(in, map[string]any{"expect_count": 3}))}, &recorder{})
	if se := sdk.Classify(err); se == nil || se.Kind != sdk.KindConflict {
		t.Fatalf("expect_count mismatch: %v", err)
	}
	_, err = p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: obj(merge(in, map[string]any{"max_count": 2}))}, &recorder{})
	if kindOf(err) != sdk.KindConflict {
		t.Fatalf("max_count: %v", err)
	}
	if diff := cmp.Diff(before, leafDocs(t, c, db)); diff != "" {
		t.Fatalf("a refused delete changed the database:\n%s", diff)
	}

	in["expect_count"] = 4
	res, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: obj(in)}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res, "count"); n != 4 {
		t.Fatalf("deleted %d", n)
	}
	if _, err := c.GetDoc(ctx, db, "binary-1", nil); kindOf(err) != sdk.KindNotFound {
		t.Fatalf("binary-1 still there: %v", err)
	}
	// Idempotent: the same step again finds nothing more to delete.
	if _, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: obj(merge(in, map[string]any{"expect_count": 0}))}, &recorder{}); err != nil {
		t.Fatal(err)
	}

	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: obj(in), UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	// Bodies and attachments are back exactly (revisions are new).
	for _, id := range []string{"binary-0", "binary-1", "binary-2", "src-device"} {
		var want map[string]any
		for _, d := range cozyV2Source() {
			if d["_id"] == id {
				want = d
			}
		}
		got := getDoc(t, c, db, id)
		delete(got, "_rev")
		if diff := cmp.Diff(canonicalFull(want), canonicalFull(got)); diff != "" {
			t.Errorf("%s after undo (-want +got):\n%s", id, diff)
		}
	}
	// A second undo (a retried rollback) changes nothing and succeeds.
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: obj(in), UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Errorf("second undo: %v", err)
	}
}

// A delete_docs step whose attempt was lost after it deleted (a crash
// before its result was journaled) is applied again with its checkpoint:
// the guard still sees the same count and the undo state still lists
// every deleted document.
func TestDeleteDocsResumedAfterCrash(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	db := dbName(t, "cozy")
	c := client(t, s)
	seed(t, c, db, cozyV2Source())
	p := sdk.Local(New())
	ctx := tctx(t)
	in := obj(merge(connIn(s, ""), map[string]any{"database": db, "selector": obj(map[string]any{"docType": "Application"}), "expect_count": 3}))
	rec := &recorder{}
	if _, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: in}, rec); err != nil {
		t.Fatal(err)
	}
	if rec.last() == nil {
		t.Fatal("no checkpoint before deleting")
	}
	// The result is lost; the engine applies the step again with the
	// journaled checkpoint.
	res, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: in, Checkpoint: rec.last()}, &recorder{})
	if err != nil {
		t.Fatalf("resumed attempt: %v", err)
	}
	if n := outInt(t, res, "count"); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"src-app-files", "src-app-contacts", "src-app-databrowser"} {
		if d := getDoc(t, c, db, id); d["docType"] != "Application" {
			t.Errorf("%s not restored: %v", id, d)
		}
	}
}

package couchdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/sdk"
)

func TestDumpRestore(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	restored := dbName(t, "restored")
	sc, dc := client(t, src), client(t, dst)
	seedVaried(t, sc, db)
	sec := []byte(`{"admins":{"names":["ops"],"roles":[]},"members":{"names":["alice"],"roles":[]}}`)
	if err := putSecurity(tctx(t), sc, db, sec); err != nil {
		t.Fatal(err)
	}
	p := sdk.Local(New())
	ctx := tctx(t)
	path := filepath.Join(t.TempDir(), "backup", "cozy.json.gz")
	res, err := p.Apply(ctx, "dump", &sdk.ApplyRequest{Inputs: obj(merge(connIn(src, ""), map[string]any{"database": db, "path": path}))}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != outInt(t, res, "bytes") {
		t.Fatalf("dump file: %v", err)
	}
	// No overwrite unless asked.
	_, err = p.Apply(ctx, "dump", &sdk.ApplyRequest{Inputs: obj(merge(connIn(src, ""), map[string]any{"database": db, "path": path}))}, &recorder{})
	if kindOf(err) != sdk.KindConflict {
		t.Errorf("second dump to the same path: %v", err)
	}

	in := obj(merge(connIn(dst, ""), map[string]any{"database": restored, "path": path, "restore_security": true}))
	rres, err := p.Apply(ctx, "restore", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if !rres.Outputs.GetAttr("created").True() {
		t.Error("created = false")
	}
	if diff := cmp.Diff(leafDocs(t, sc, db), leafDocs(t, dc, restored)); diff != "" {
		t.Errorf("restored database differs (-src +restored):\n%s", diff)
	}
	got, _ := getSecurity(ctx, dc, restored)
	if !sameJSON(got, sec) {
		t.Errorf("restored _security = %s", got)
	}
	if err := p.Undo(ctx, "restore", &sdk.UndoRequest{Inputs: in, UndoState: rres.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dc.Exists(ctx, restored); ok {
		t.Error("undo left the database the restore created")
	}
	// A file that is not a dump is refused.
	bad := filepath.Join(t.TempDir(), "bad.gz")
	_ = os.WriteFile(bad, []byte("not gzip"), 0o600)
	_, err = p.Apply(ctx, "restore", &sdk.ApplyRequest{Inputs: obj(merge(connIn(dst, ""), map[string]any{"path": bad}))}, &recorder{})
	if kindOf(err) != sdk.KindInvalid {
		t.Errorf("bad dump: %v", err)
	}
}

func TestPutDocAndUndo(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	c := client(t, s)
	p := sdk.Local(New())
	ctx := tctx(t)
	// Cozy v3's global/instances: a slash in the database name.
	in := obj(merge(connIn(s, ""), map[string]any{"database": "global/instances", "create_database": true,
		"doc": `{"_id":"alice.example.net","domain":"alice.example.net","prefix":"alice-example-net","locale":"fr"}`}))
	res, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outputs.GetAttr("changed").True() {
		t.Error("changed = false on create")
	}
	// Same content again: no new revision, nothing to undo.
	res2, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil || res2.Outputs.GetAttr("changed").True() || res2.UndoState != nil {
		t.Errorf("second put: %v changed=%v", err, res2.Outputs.GetAttr("changed"))
	}
	in2 := obj(merge(connIn(s, ""), map[string]any{"database": "global/instances", "id": "alice.example.net",
		"doc": obj(map[string]any{"domain": "alice.example.net", "prefix": "alice-example-net", "locale": "en"})}))
	rec := &recorder{}
	if _, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in2}, rec); err != nil {
		t.Fatal(err)
	}
	// The result is lost (a crash); applied again with its checkpoint, the
	// step still knows the previous version.
	res3, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in2, Checkpoint: rec.last()}, &recorder{})
	if err != nil || !res3.Outputs.GetAttr("changed").True() {
		t.Fatalf("resumed put: %v", err)
	}
	if d := getDoc(t, c, "global/instances", "alice.example.net"); d["locale"] != "en" {
		t.Fatalf("after update: %v", d)
	}
	if err := p.Undo(ctx, "put_doc", &sdk.UndoRequest{Inputs: in2, UndoState: res3.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if d := getDoc(t, c, "global/instances", "alice.example.net"); d["locale"] != "fr" {
		t.Fatalf("after undo of the update: %v", d)
	}
	// Undo of the creation: the document is at a revision this step did
	// not write (the update's undo wrote a newer one), so it refuses.
	err = p.Undo(ctx, "put_doc", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict {
		t.Errorf("undo over a later change: %v", err)
	}
}

func TestFindAndScanAgree(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	db := dbName(t, "cozy")
	c := client(t, s)
	seed(t, c, db, append(cozyV2Source(), cozyV2Target()...))
	ctx := tctx(t)
	for _, sel := range []string{
		`{"docType":"StackApplication"}`,
		`{"docType":"CozyInstance","domain":{"$exists":false}}`,
		`{"docType":"Application","slug":{"$ne":"data-browser"}}`,
		`{"$or":[{"docType":"User"},{"docType":"Device"}]}`,
		`{"docType":"Contact","fn":{"$regex":"^Person 1"}}`,
		`{"port":{"$gt":9115}}`,
	} {
		m, err := selectorFrom(ctyString(sel))
		if err != nil {
			t.Fatal(err)
		}
		found, err := findDocs(ctx, c, db, m, nil, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		scanned, err := scanDocs(ctx, c, db, m, nil, 0, 7)
		if err != nil {
			t.Fatal(err)
		}
		if found.FullScan || !scanned.FullScan {
			t.Errorf("FullScan flags wrong")
		}
		if diff := cmp.Diff(idsOf(found.Docs), idsOf(scanned.Docs)); diff != "" || len(found.Docs) == 0 {
			t.Errorf("%s: _find and scan differ (-find +scan):\n%s (%d)", sel, diff, len(found.Docs))
		}
	}
	// Through the action: outputs usable from HCL.
	res, err := sdk.Local(New()).Apply(ctx, "find", &sdk.ApplyRequest{Inputs: obj(merge(connIn(s, ""), map[string]any{
		"database": db, "selector": obj(map[string]any{"docType": "StackApplication"}), "fields": []string{"_id", "name", "version"}, "limit": 4}))}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res, "count"); n != 4 {
		t.Errorf("count = %d", n)
	}
	if !strings.Contains(res.Outputs.GetAttr("docs_json").AsString(), `"version"`) {
		t.Errorf("docs_json = %s", res.Outputs.GetAttr("docs_json").AsString())
	}
}

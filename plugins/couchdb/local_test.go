package couchdb

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/sdk"
)

// TestDumpRestoreLocalDocs: a dump keeps the _local documents (those the
// server lists, or those named where it cannot list them) and a restore
// that replaces the database writes them back.
func TestDumpRestoreLocalDocs(t *testing.T) {
	t.Parallel()
	_, dst := servers(t)
	db := dbName(t, "cozy")
	c := client(t, dst)
	ctx := tctx(t)
	seed(t, c, db, smallDocs(3))
	putLocal := func(id string, body map[string]any) {
		t.Helper()
		if err := c.JSON(ctx, Request{Method: "PUT", Path: docPath(db, "_local/"+id), Body: body}, nil); err != nil {
			t.Fatal(err)
		}
	}
	putLocal("phone-sync", map[string]any{"last_seq": 42, "session_id": "s1"})
	p := sdk.Local(New())
	path := filepath.Join(t.TempDir(), "cozy.json.gz")
	conn := connIn(dst, "")
	res, err := p.Apply(ctx, "dump", &sdk.ApplyRequest{Inputs: obj(merge(conn, map[string]any{"database": db, "path": path,
		"local_ids": []string{"_local/phone-sync", "absent"}}))}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res, "local_docs"); n != 1 {
		t.Errorf("local_docs = %d, want 1", n)
	}
	putLocal("phone-sync", map[string]any{"_rev": "0-1", "last_seq": 99})
	rres, err := p.Apply(ctx, "restore", &sdk.ApplyRequest{Inputs: obj(merge(conn, map[string]any{"database": db, "path": path, "replace": true}))}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, rres, "local_docs"); n != 1 {
		t.Errorf("restored local_docs = %d, want 1", n)
	}
	var got map[string]any
	if err := c.JSON(ctx, Request{Method: "GET", Path: docPath(db, "_local/phone-sync")}, &got); err != nil {
		t.Fatalf("_local/phone-sync after the restore: %v", err)
	}
	if got["last_seq"] != float64(42) || got["session_id"] != "s1" {
		t.Errorf("_local/phone-sync = %v", got)
	}
}

// TestRestoreUndoDrift: a database the restore created and someone wrote
// to since is not deleted without force.
func TestRestoreUndoDrift(t *testing.T) {
	t.Parallel()
	_, dst := servers(t)
	db, restored := dbName(t, "cozy"), dbName(t, "restored")
	c := client(t, dst)
	ctx := tctx(t)
	seed(t, c, db, smallDocs(3))
	p := sdk.Local(New())
	path := filepath.Join(t.TempDir(), "cozy.json.gz")
	if _, err := p.Apply(ctx, "dump", &sdk.ApplyRequest{Inputs: obj(merge(connIn(dst, ""), map[string]any{"database": db, "path": path}))}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	in := obj(merge(connIn(dst, ""), map[string]any{"database": restored, "path": path}))
	res, err := p.Apply(ctx, "restore", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutDoc(ctx, restored, "written-later", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	err = p.Undo(ctx, "restore", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{})
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), restored) {
		t.Fatalf("undo of a restored database written to since: %v", err)
	}
	if ok, _ := c.Exists(ctx, restored); !ok {
		t.Fatal("a refused undo deleted the database")
	}
	if err := p.Undo(ctx, "restore", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}, &recorder{}); err != nil {
		t.Fatalf("forced undo: %v", err)
	}
	if ok, _ := c.Exists(ctx, restored); ok {
		t.Error("a forced undo left the database")
	}
}

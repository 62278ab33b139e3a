package couchdb

import (
	"bytes"
	"testing"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// The undo states and checkpoints of put_doc (over an existing document)
// and delete_docs hold whole documents: a CouchDB user's password hash, an
// application's tokens. They are marked sensitive, so the engine seals
// them in the journal (or, without a state key, does not store them);
// a put_doc that only created a document keeps a plain undo state, so a
// later rollback without a key can still delete it. The mark crosses the
// plugin protocol.
func TestUndoStatesHoldingDocumentsAreSensitive(t *testing.T) {
	t.Parallel()
	s, _ := servers(t)
	c := client(t, s)
	db := dbName(t, "users")
	const hash = "canary-derived-key-5f1e2d"
	user := map[string]any{"_id": "org.couchdb.user:alice", "type": "user", "name": "alice", "roles": []any{},
		"password_scheme": "pbkdf2", "iterations": 10, "salt": "canary-salt-77", "derived_key": hash}
	seed(t, c, db, []map[string]any{user, {"_id": "other", "docType": "io.cozy.files"}})
	p := sdk.Local(New())
	ctx := tctx(t)
	sensitive := func(rec *recorder) []bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return append([]bool(nil), rec.sensitive...)
	}
	holdsHash := func(b []byte) bool {
		return bytes.Contains(b, []byte(hash)) || bytes.Contains(unpackOrSelf(b), []byte(hash))
	}

	// put_doc over alice: the undo state holds her old password hash.
	in := obj(merge(connIn(s, ""), map[string]any{"database": db, "id": "org.couchdb.user:alice",
		"doc": `{"type":"user","name":"alice","roles":["admin"]}`}))
	rec := &recorder{}
	res, err := p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: in}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !holdsHash(res.UndoState) || !res.SensitiveUndoState {
		t.Errorf("put_doc over a user: undo state holds the hash %v, marked sensitive %v; want both", holdsHash(res.UndoState), res.SensitiveUndoState)
	}
	if got := sensitive(rec); len(got) == 0 || !got[0] {
		t.Errorf("put_doc checkpoint with the previous version: sensitive %v", got)
	}
	// Undo still puts the old version back from that state.
	if err := p.Undo(ctx, "put_doc", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	if d := getDoc(t, c, db, "org.couchdb.user:alice"); d["derived_key"] != hash {
		t.Fatalf("after undo: %v", d)
	}

	// put_doc creating a document: nothing but its name to keep.
	created := obj(merge(connIn(s, ""), map[string]any{"database": db, "id": "new-doc", "doc": obj(map[string]any{"a": 1})}))
	rec = &recorder{}
	res, err = p.Apply(ctx, "put_doc", &sdk.ApplyRequest{Inputs: created}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.SensitiveUndoState || len(sensitive(rec)) == 0 || sensitive(rec)[0] {
		t.Errorf("put_doc creating a document: undo state sensitive %v, checkpoints %v; want plain", res.SensitiveUndoState, sensitive(rec))
	}

	// delete_docs of alice, over the plugin protocol.
	del := obj(merge(connIn(s, ""), map[string]any{"database": db,
		"selector": obj(map[string]any{"type": "user"}), "expect_count": 1}))
	res, _, err = sdktest.ApplyRequest(t, sdktest.GRPC(t, New()), "delete_docs", &sdk.ApplyRequest{Inputs: del})
	if err != nil {
		t.Fatal(err)
	}
	if !holdsHash(res.UndoState) || !res.SensitiveUndoState {
		t.Errorf("delete_docs over gRPC: undo state holds the hash %v, marked sensitive %v; want both", holdsHash(res.UndoState), res.SensitiveUndoState)
	}
	if err := p.Undo(ctx, "delete_docs", &sdk.UndoRequest{Inputs: del, UndoState: res.UndoState}, &recorder{}); err != nil {
		t.Fatal(err)
	}
	// In process, its checkpoint (the bodies, before anything is deleted)
	// is sensitive too.
	rec = &recorder{}
	if _, err := p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: del}, rec); err != nil {
		t.Fatal(err)
	}
	if got := sensitive(rec); len(got) == 0 || !got[0] {
		t.Errorf("delete_docs checkpoint: sensitive %v", got)
	}
}

// unpackOrSelf is a delete_docs undo state unpacked (it may be
// compressed), or b as it is.
func unpackOrSelf(b []byte) []byte {
	u, err := unpackUndo(b)
	if err != nil {
		return b
	}
	var out []byte
	for _, d := range u.Docs {
		out = append(out, d.Body...)
	}
	return out
}

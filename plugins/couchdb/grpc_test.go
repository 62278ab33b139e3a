package couchdb

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestOverGRPC runs the actions through the real plugin protocol: dynamic
// selectors and document outputs, checkpoints, undo state and classified
// errors must survive the wire.
func TestOverGRPC(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	seed(t, client(t, src), db, cozyV2Source())
	prov := sdktest.GRPC(t, New())

	schema, err := sdktest.Schema(t, prov)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"check", "replicate", "copy_security", "dump", "restore", "find", "delete_docs", "put_doc", "verify"} {
		if _, ok := schema.Action(a); !ok {
			t.Errorf("action %s missing from the schema", a)
		}
	}
	rs, _ := schema.Action("replicate")
	if a := rs.Input("target_password"); a == nil || !a.Sensitive {
		t.Error("target_password is not sensitive")
	}

	res, rec := sdktest.MustApply(t, prov, "replicate", obj(merge(connIn(src, "source_"), connIn(dst, "target_"),
		map[string]any{"databases": []string{db}, "checkpoint_interval": "0s"})))
	if len(rec.Checkpoints()) == 0 {
		t.Error("no checkpoint crossed the wire")
	}
	sdktest.AssertOutput(t, res, "verified", cty.True)

	in := obj(merge(connIn(dst, ""), map[string]any{"database": db,
		"selector": obj(map[string]any{"docType": "Application", "slug": obj(map[string]any{"$ne": "data-browser"})}), "expect_count": 2}))
	found, _ := sdktest.MustApply(t, prov, "find", obj(merge(connIn(dst, ""), map[string]any{"database": db,
		"selector": obj(map[string]any{"docType": "StackApplication"})})))
	docs := found.Outputs.GetAttr("docs")
	if !docs.CanIterateElements() || docs.LengthInt() != 3 {
		t.Fatalf("find docs over gRPC = %#v", docs)
	}
	for it := docs.ElementIterator(); it.Next(); {
		_, d := it.Element()
		if d.GetAttr("docType").AsString() != "StackApplication" || d.GetAttr("version").Type() != cty.String {
			t.Errorf("doc = %#v", d)
		}
	}
	res, _ = sdktest.ApplyAndUndo(t, prov, "delete_docs", in)
	sdktest.AssertOutput(t, res, "count", cty.NumberIntVal(2))
	if d := getDoc(t, client(t, dst), db, "src-app-files"); d["slug"] != "files" {
		t.Errorf("after undo over gRPC: %v", d)
	}

	_, _, err = sdktest.Apply(t, prov, "check", obj(map[string]any{"url": dst.URL, "username": "admin", "password": "grpc-wrong-pw"}))
	sdktest.AssertKind(t, err, sdk.KindAuth)
	if strings.Contains(err.Error(), "grpc-wrong-pw") {
		t.Errorf("password in error: %v", err)
	}
}

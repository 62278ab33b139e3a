package couchdb

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// TestDocTypeCaseInsensitive: doc_type matches docType in any case, as
// Cozy v2's data-system does, on the server (_find) and in the plugin's
// own matcher alike; the other selectors still apply.
func TestDocTypeCaseInsensitive(t *testing.T) {
	t.Parallel()
	_, dst := servers(t)
	db := dbName(t, "cozy")
	c := client(t, dst)
	seed(t, c, db, []map[string]any{
		{"_id": "a1", "docType": "Application", "slug": "files"},
		{"_id": "a2", "docType": "application", "slug": "contacts"},
		{"_id": "a3", "docType": "APPLICATION", "slug": "data-browser"},
		{"_id": "x1", "docType": "ApplicationX", "slug": "files"},
		{"_id": "x2", "docType": "Contact", "slug": "files"},
		{"_id": "x3", "slug": "files"},
	})
	p := sdk.Local(New())
	ctx := tctx(t)
	ids := func(res *sdk.Result, name string) []string {
		var out []string
		for it := res.Outputs.GetAttr(name).ElementIterator(); it.Next(); {
			_, v := it.Element()
			out = append(out, v.AsString())
		}
		sort.Strings(out)
		return out
	}
	res, err := p.Apply(ctx, "find", &sdk.ApplyRequest{Inputs: obj(merge(connIn(dst, ""), map[string]any{"database": db, "doc_type": "Application"}))}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a1", "a2", "a3"}, ids(res, "ids")); diff != "" {
		t.Errorf("find doc_type (-want +got):\n%s", diff)
	}
	// The plugin's matcher (servers without _find) agrees.
	sel, err := inputSelector(obj(map[string]any{"doc_type": "Application"}))
	if err != nil {
		t.Fatal(err)
	}
	for doc, want := range map[string]bool{"Application": true, "aPPlication": true, "ApplicationX": false, "Applicatio": false, "Contact": false} {
		if ok, err := matchSelector(sel, map[string]any{"docType": doc}); ok != want || err != nil {
			t.Errorf("match docType %q = %v, %v", doc, ok, err)
		}
	}
	in := obj(merge(connIn(dst, ""), map[string]any{"database": db, "doc_type": "application", "selector": `{"slug":{"$ne":"data-browser"}}`}))
	res, err = p.Apply(ctx, "delete_docs", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a1", "a2"}, ids(res, "deleted")); diff != "" {
		t.Errorf("delete_docs doc_type with selector (-want +got):\n%s", diff)
	}
}

// TestDeletePlanPartlyKnown: the plan of a deletion whose exclusions come
// from an earlier step says what it will delete.
func TestDeletePlanPartlyKnown(t *testing.T) {
	in := obj(map[string]any{"url": "http://127.0.0.1:1", "database": "cozy", "doc_type": "CozyInstance",
		"exclude_ids": cty.UnknownVal(cty.List(cty.String)), "expect_count": 1})
	res, err := deleteDocsAction{}.Plan(tctx(t), &sdk.PlanRequest{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	want := "delete the documents of cozy whose docType is CozyInstance (in any case), except those exclude_ids names (known at apply time); exactly 1 expected, else nothing is deleted (the list is known at apply time)"
	if res.Summary != want {
		t.Errorf("summary = %q", res.Summary)
	}
}

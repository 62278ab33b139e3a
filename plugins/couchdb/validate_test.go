package couchdb

import (
	"context"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

func TestValidate(t *testing.T) {
	p := sdk.Local(New())
	conn := map[string]any{"url": "http://127.0.0.1:5984"}
	pair := map[string]any{"source_url": "http://a:5984", "target_url": "http://b:5984"}
	for _, tc := range []struct {
		action string
		in     map[string]any
		want   string // substring of the first error; "" = valid
	}{
		{"replicate", merge(pair, map[string]any{"databases": []string{"cozy"}}), ""},
		{"replicate", pair, "set databases or prefix"},
		{"replicate", merge(pair, map[string]any{"prefix": "alice", "mode": "push"}), "mode must be"},
		{"replicate", merge(pair, map[string]any{"prefix": "alice", "checkpoint_interval": "soon"}), "not a duration"},
		{"replicate", merge(pair, map[string]any{"prefix": "alice", "workers": 0}), "between 1 and 10000"},
		{"replicate", merge(pair, map[string]any{"prefix": "alice", "source_url": "ftp://x"}), "invalid CouchDB URL"},
		{"replicate", merge(pair, map[string]any{"prefix": "alice", "source_url": cty.UnknownVal(cty.String)}), ""},
		{"delete_docs", merge(conn, map[string]any{"database": "cozy"}), "set selector, doc_type or ids"},
		{"delete_docs", merge(conn, map[string]any{"database": "cozy", "selector": `{"a":{"$bogus":1}}`}), "unsupported operator"},
		{"delete_docs", merge(conn, map[string]any{"database": "cozy", "ids": []string{"x"}, "expect_count": -1}), "negative"},
		{"find", merge(conn, map[string]any{"database": "cozy", "selector": "[1]"}), "JSON object"},
		{"put_doc", merge(conn, map[string]any{"database": "cozy", "doc": obj(map[string]any{"a": "b"})}), "set id"},
		{"put_doc", merge(conn, map[string]any{"database": "cozy", "doc": `{"_id":"x"}`}), ""},
		{"check", map[string]any{"url": "not a url"}, "invalid CouchDB URL"},
		{"check", map[string]any{"url": "http://h:5984", "bogus": true}, "unsupported argument"},
	} {
		d, err := p.Validate(context.Background(), tc.action, obj(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if d.HasErrors() {
			got = d.Err().Error()
		}
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %v: got %q, want %q", tc.action, tc.in, got, tc.want)
		}
	}
}

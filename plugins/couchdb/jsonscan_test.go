package couchdb

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refBulkGet is the encoding/json reading of a _bulk_get answer that
// parseBulkGet replaces.
func refBulkGet(body []byte) ([]fetchedDoc, error) {
	var out struct {
		Results []struct {
			Docs []struct {
				OK json.RawMessage `json:"ok"`
			} `json:"docs"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	var docs []fetchedDoc
	for _, r := range out.Results {
		for _, d := range r.Docs {
			var ir struct {
				ID  string `json:"_id"`
				Rev string `json:"_rev"`
			}
			if len(d.OK) == 0 || d.OK[0] != '{' || json.Unmarshal(d.OK, &ir) != nil || ir.ID == "" || ir.Rev == "" {
				continue
			}
			docs = append(docs, fetchedDoc{ID: ir.ID, Rev: ir.Rev, Raw: d.OK})
		}
	}
	return docs, nil
}

func TestParseBulkGet(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []fetchedDoc
	}{
		{"empty", `{"results":[]}`, nil},
		{"pouchdb", `{"results":[{"id":"a","docs":[{"ok":{"_id":"a","_rev":"1-x","_revisions":{"start":1,"ids":["x"]},"_attachments":{"f":{"content_type":"text/plain","data":"aGk="}}}}]}]}`,
			[]fetchedDoc{{ID: "a", Rev: "1-x", Raw: json.RawMessage(`{"_id":"a","_rev":"1-x","_revisions":{"start":1,"ids":["x"]},"_attachments":{"f":{"content_type":"text/plain","data":"aGk="}}}`)}}},
		{"spaces and other members", " {\n \"other\" : [1, {\"x\": \"]}\"}] ,\"results\" : [ { \"docs\" : [ { \"ok\" : { \"n\" : -1.5e3 , \"_rev\" : \"2-b\" , \"_id\" : \"b\" } } ] , \"id\" : \"b\" } ] } ",
			[]fetchedDoc{{ID: "b", Rev: "2-b", Raw: json.RawMessage(`{ "n" : -1.5e3 , "_rev" : "2-b" , "_id" : "b" }`)}}},
		{"escapes", `{"results":[{"docs":[{"ok":{"_id":"q\"\\","_rev":"1-a","s":"x\\\\\"]}\\"}}]}]}`,
			[]fetchedDoc{{ID: `q"\`, Rev: "1-a", Raw: json.RawMessage(`{"_id":"q\"\\","_rev":"1-a","s":"x\\\\\"]}\\"}`)}}},
		{"escaped key", `{"res\u0075lts":[{"docs":[{"\u006fk":{"\u005fid":"é\u00e9","_rev":"1-a"}}]}]}`,
			[]fetchedDoc{{ID: "éé", Rev: "1-a", Raw: json.RawMessage(`{"\u005fid":"é\u00e9","_rev":"1-a"}`)}}},
		{"errors and missing", `{"results":[{"id":"a","docs":[{"error":{"id":"a","rev":"1-x","error":"not_found","reason":"missing"}},{"missing":"1-y"},{"ok":null},{"ok":{"_id":"a"}}]},{"id":"c","docs":[]}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBulkGet([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseBulkGet (-want +got):\n%s", diff)
			}
			ref, err := refBulkGet([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(ref, got); diff != "" {
				t.Errorf("differs from encoding/json (-ref +got):\n%s", diff)
			}
		})
	}
}

func TestParseOpenRevs(t *testing.T) {
	got, err := parseOpenRevs([]byte(`[{"ok":{"_id":"a","_rev":"2-b","_deleted":true}},{"missing":"3-c"}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []fetchedDoc{{ID: "a", Rev: "2-b", Raw: json.RawMessage(`{"_id":"a","_rev":"2-b","_deleted":true}`)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseBulkGetMalformed(t *testing.T) {
	for _, body := range []string{
		``, `[]`, `{`, `{"results":[`, `{"results":[{"docs":[{"ok":{"_id":"a","_rev":"1-a"}`,
		`{"results":[{"docs":[{"ok":{"_id":"a,"_rev":"1-a"}}]}]}`, `{"results":[{"docs":[{"ok":{"_id":"a" "_rev":"1-a"}}]}]}`,
		`{"results":[{"docs":[{"ok":{"_id":"unterminated}]}]}`, `{"results":[{"docs":[{"ok":{"_id":"a","x":[}}]}]}`,
		`{"results" [] }`, `{"results":[] x}`, `{results:[]}`, `{"results":[{"docs":[{"ok":{"_id":1,"_rev":"1-a"}}]}]}`,
	} {
		if _, err := parseBulkGet([]byte(body)); err == nil {
			t.Errorf("parseBulkGet(%q): no error", body)
		} else if !errors.Is(err, errScan) && !strings.Contains(err.Error(), "_id") {
			t.Errorf("parseBulkGet(%q): %v", body, err)
		}
	}
}

// FuzzParseBulkGet builds _bulk_get answers from arbitrary strings with
// encoding/json and requires the fast reader to agree with it; arbitrary
// bytes must never make it panic.
func FuzzParseBulkGet(f *testing.F) {
	f.Add("doc", "1-abc", "value", "aGVsbG8=", []byte(`{"results":[]}`))
	f.Add(`q"\`, "2-\\\"", "\u2028<&>\x00", "", []byte(`{"results":[{"docs":[{"ok":{"_id":"a\\"}}]}]}`))
	f.Fuzz(func(t *testing.T, id, rev, val, data string, raw []byte) {
		_, _ = parseBulkGet(raw)
		_, _ = parseOpenRevs(raw)
		doc := map[string]any{"_id": id, "_rev": rev, val: []any{val, map[string]any{"k": val}}, "n": 1.5,
			"_attachments": map[string]any{val: map[string]any{"content_type": "x", "data": data}}}
		if val == "_id" || val == "_rev" || val == "_attachments" || val == "n" {
			return
		}
		js, err := json.Marshal(map[string]any{"results": []any{map[string]any{"id": id, "docs": []any{map[string]any{"ok": doc}, map[string]any{"missing": rev}}}}})
		if err != nil {
			return // invalid UTF-8 is replaced, not an error; nothing else fails
		}
		got, err := parseBulkGet(js)
		if err != nil {
			t.Fatalf("parseBulkGet(%s): %v", js, err)
		}
		ref, err := refBulkGet(js)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ref, got); diff != "" {
			t.Errorf("differs from encoding/json on %s (-ref +got):\n%s", js, diff)
		}
	})
}

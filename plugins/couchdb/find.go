package couchdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// findAction is couchdb.find.
type findAction struct{}

var (
	_ sdk.Action    = findAction{}
	_ sdk.Validator = findAction{}
)

func (findAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""),
		sdk.Attribute{Name: "database", Type: cty.String, Required: true},
		sdk.Attribute{Name: "selector", Type: cty.DynamicPseudoType,
			Description: `Mango selector, as an object or a JSON string, e.g. { slug = "files" } (set selector, doc_type or both).`},
		docTypeAttr,
		sdk.Attribute{Name: "fields", Type: cty.List(cty.String), Description: "Return only these fields (default: whole documents)."},
		sdk.Attribute{Name: "limit", Type: cty.Number, Description: "At most this many documents (default: all)."},
		sdk.Attribute{Name: "page_size", Type: cty.Number, Description: "Documents per request (default 1000)."},
	)
	return sdk.ActionSchema{
		Name:        "find",
		Description: "Find documents with a Mango selector; servers without _find are scanned and filtered.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "docs", Type: cty.DynamicPseudoType, Description: "The documents (a list of objects)."},
			{Name: "docs_json", Type: cty.String, Description: "The documents as a JSON array."},
			{Name: "ids", Type: cty.List(cty.String)},
			{Name: "count", Type: cty.Number},
			{Name: "full_scan", Type: cty.Bool, Description: "Whether the server lacked _find and the database was scanned."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (findAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateURL(in, "url")
	sv, tv := ctyx.Attr(in, "selector"), ctyx.Attr(in, "doc_type")
	if sv.IsKnown() && tv.IsKnown() && sv.IsNull() && tv.IsNull() {
		d = d.Errorf([]string{"selector"}, "set selector or doc_type")
	}
	if sv.IsWhollyKnown() && !sv.IsNull() {
		if _, err := selectorFrom(sv); err != nil {
			d = d.Errorf([]string{"selector"}, "%v", err)
		}
	}
	return d
}

// selectorFrom turns an object or a JSON string into a selector.
func selectorFrom(v cty.Value) (map[string]any, error) {
	if v.IsNull() {
		return nil, fmt.Errorf("a selector is required")
	}
	v, _ = v.UnmarkDeep()
	var raw []byte
	if v.Type() == cty.String {
		raw = []byte(v.AsString())
	} else {
		b, err := ctySimpleJSON(v)
		if err != nil {
			return nil, fmt.Errorf("selector: %v", err)
		}
		raw = b
	}
	var sel map[string]any
	if err := json.Unmarshal(raw, &sel); err != nil {
		return nil, fmt.Errorf("selector must be a JSON object: %v", err)
	}
	if _, err := matchSelector(sel, map[string]any{}); err != nil {
		return nil, fmt.Errorf("selector: %v", err)
	}
	return sel, nil
}

// findResult is what findDocs returns.
type findResult struct {
	Docs     []map[string]any
	FullScan bool
}

// findDocs runs a Mango query, paging through all results (limit 0 = all).
// When the server has no _find it scans _all_docs and filters here.
// Design documents are never returned, as with _find.
func findDocs(ctx context.Context, c *Client, db string, sel map[string]any, fields []string, limit, pageSize int) (findResult, error) {
	if pageSize <= 0 {
		pageSize = 1000
	}
	var res findResult
	skip := 0
	bookmark := ""
	for {
		n := pageSize
		if limit > 0 && limit-len(res.Docs) < n {
			n = limit - len(res.Docs)
		}
		if n <= 0 {
			return res, nil
		}
		body := map[string]any{"selector": sel, "limit": n}
		if len(fields) > 0 {
			body["fields"] = fields
		}
		if bookmark != "" {
			body["bookmark"] = bookmark
		} else if skip > 0 {
			body["skip"] = skip
		}
		var page struct {
			Docs     []map[string]any `json:"docs"`
			Bookmark string           `json:"bookmark"`
		}
		err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_find", Body: body}, &page)
		if err != nil {
			if noFind(err) {
				return scanDocs(ctx, c, db, sel, fields, limit, pageSize)
			}
			return res, fmt.Errorf("find in %s: %w", db, err)
		}
		for _, d := range page.Docs {
			if id, _ := d["_id"].(string); strings.HasPrefix(id, "_design/") {
				continue
			}
			res.Docs = append(res.Docs, d)
		}
		if len(page.Docs) < n {
			return res, nil
		}
		if page.Bookmark != "" && page.Bookmark != "nil" {
			bookmark = page.Bookmark
		} else {
			skip += len(page.Docs)
		}
	}
}

// noFind tells whether err says the server has no _find (CouchDB 1.x).
func noFind(err error) bool {
	var he *HTTPError
	s := statusOf(err)
	if s == 404 && asHTTP(err, &he) {
		// A missing database is not a missing endpoint.
		r := strings.ToLower(he.Reason)
		return !strings.Contains(r, "no_db_file") && !strings.Contains(r, "database does not exist")
	}
	if s == 405 || s == 501 {
		return true
	}
	if s == 400 && asHTTP(err, &he) {
		r := strings.ToLower(he.Reason)
		return strings.Contains(r, "reserved") || strings.Contains(r, "_find")
	}
	return false
}

// scanDocs pages through _all_docs and keeps the matching documents.
func scanDocs(ctx context.Context, c *Client, db string, sel map[string]any, fields []string, limit, pageSize int) (findResult, error) {
	res := findResult{FullScan: true}
	startKey := ""
	for {
		q := url.Values{"include_docs": {"true"}, "limit": {strconv.Itoa(pageSize + 1)}}
		if startKey != "" {
			k, _ := json.Marshal(startKey)
			q.Set("startkey", string(k))
		}
		var page struct {
			Rows []struct {
				ID  string         `json:"id"`
				Doc map[string]any `json:"doc"`
			} `json:"rows"`
		}
		if err := c.JSON(ctx, Request{Method: "GET", Path: dbPath(db) + "/_all_docs", Query: q}, &page); err != nil {
			return res, fmt.Errorf("scan %s: %w", db, err)
		}
		rows := page.Rows
		more := len(rows) > pageSize
		if more {
			startKey = rows[pageSize].ID
			rows = rows[:pageSize]
		}
		for _, r := range rows {
			if r.Doc == nil || strings.HasPrefix(r.ID, "_design/") {
				continue
			}
			ok, err := matchSelector(sel, r.Doc)
			if err != nil {
				return res, sdk.Errorf(sdk.KindInvalid, false, "fix the selector", "selector: %v", err)
			}
			if !ok {
				continue
			}
			res.Docs = append(res.Docs, project(r.Doc, fields))
			if limit > 0 && len(res.Docs) >= limit {
				return res, nil
			}
		}
		if !more {
			return res, nil
		}
	}
}

// project keeps only the named (possibly dotted) fields.
func project(doc map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return doc
	}
	out := map[string]any{}
	for _, f := range fields {
		v, ok := lookup(doc, f)
		if !ok {
			continue
		}
		parts := splitPath(f)
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}

// docsValue turns documents into a cty list-like value (a tuple of objects)
// and their JSON text.
func docsValue(docs []map[string]any) (cty.Value, string, error) {
	if docs == nil {
		docs = []map[string]any{}
	}
	b, err := json.Marshal(docs)
	if err != nil {
		return cty.NilVal, "", err
	}
	t, err := ctyjson.ImpliedType(b)
	if err != nil {
		return cty.NilVal, "", err
	}
	v, err := ctyjson.Unmarshal(b, t)
	if err != nil {
		return cty.NilVal, "", err
	}
	return v, string(b), nil
}

func (findAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sel, err := inputSelector(req.Inputs)
	if err == nil && sel == nil {
		err = fmt.Errorf("set selector or doc_type")
	}
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the selector", "%v", err)
	}
	db := ctyx.StringAttr(req.Inputs, "database")
	limit, _ := ctyx.IntAttr(req.Inputs, "limit", 0)
	ps, _ := ctyx.IntAttr(req.Inputs, "page_size", 1000)
	res, err := findDocs(ctx, c, db, sel, listAttr(req.Inputs, "fields"), int(limit), int(ps))
	if err != nil {
		return nil, err
	}
	if res.FullScan {
		ev.Log(sdk.LevelInfo, db+": the server has no _find; scanned every document")
	}
	dv, js, err := docsValue(res.Docs)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInternal, false, "", "convert documents: %v", err)
	}
	ids := make([]cty.Value, 0, len(res.Docs))
	for _, d := range res.Docs {
		if id, ok := d["_id"].(string); ok {
			ids = append(ids, cty.StringVal(id))
		}
	}
	idv := cty.ListValEmpty(cty.String)
	if len(ids) > 0 {
		idv = cty.ListVal(ids)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %d documents match", db, len(res.Docs)))
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"docs": dv, "docs_json": cty.StringVal(js), "ids": idv,
		"count": cty.NumberIntVal(int64(len(res.Docs))), "full_scan": cty.BoolVal(res.FullScan),
	})}, nil
}

func asHTTP(err error, he **HTTPError) bool { return errors.As(err, he) }

// ctySimpleJSON renders a cty value as plain JSON (no type envelope).
func ctySimpleJSON(v cty.Value) ([]byte, error) {
	return ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
}

package couchdb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// deleteDocsAction is couchdb.delete_docs.
type deleteDocsAction struct{}

var (
	_ sdk.Action    = deleteDocsAction{}
	_ sdk.Undoer    = deleteDocsAction{}
	_ sdk.Validator = deleteDocsAction{}
	_ sdk.Planner   = deleteDocsAction{}
)

func (deleteDocsAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""),
		sdk.Attribute{Name: "database", Type: cty.String, Required: true},
		sdk.Attribute{Name: "selector", Type: cty.DynamicPseudoType, Description: "Mango selector (object or JSON string) of the documents to delete."},
		docTypeAttr,
		sdk.Attribute{Name: "ids", Type: cty.List(cty.String), Description: "Ids of the documents to delete (with selector or doc_type: both must match)."},
		sdk.Attribute{Name: "exclude_ids", Type: cty.List(cty.String), Description: "Never delete these ids."},
		sdk.Attribute{Name: "max_versions", Type: cty.Map(cty.String),
			Description: "Delete only documents whose version_field is lower than or equal to max_versions[doc[version_key]] (dotted versions compare numerically); documents whose key is not in the map are kept."},
		sdk.Attribute{Name: "version_field", Type: cty.String, Description: `Field holding the version (default "version").`},
		sdk.Attribute{Name: "version_key", Type: cty.String, Description: `Field naming the thing versioned (default "name").`},
		sdk.Attribute{Name: "expect_count", Type: cty.Number, Description: "Refuse to delete anything unless exactly this many documents match."},
		sdk.Attribute{Name: "max_count", Type: cty.Number, Description: "Refuse to delete anything when more than this many documents match (default 1000)."},
	)
	return sdk.ActionSchema{
		Name:        "delete_docs",
		Description: "Delete the documents matching a selector or a list of ids, with count guards; native undo brings them back (bodies and attachments). The deleted documents, kept for the undo, are sealed in the journal like a secret (they may hold password hashes or tokens).",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "deleted", Type: cty.List(cty.String), Description: "Ids deleted."},
			{Name: "count", Type: cty.Number},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (deleteDocsAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateURL(in, "url")
	sv, iv, tv := ctyx.Attr(in, "selector"), ctyx.Attr(in, "ids"), ctyx.Attr(in, "doc_type")
	if sv.IsKnown() && iv.IsKnown() && tv.IsKnown() && sv.IsNull() && iv.IsNull() && tv.IsNull() {
		d = d.Errorf([]string{"selector"}, "set selector, doc_type or ids")
	}
	if sv.IsWhollyKnown() && !sv.IsNull() {
		if _, err := selectorFrom(sv); err != nil {
			d = d.Errorf([]string{"selector"}, "%v", err)
		}
	}
	if n, ok := ctyx.IntAttr(in, "expect_count", 0); ok && n < 0 {
		d = d.Errorf([]string{"expect_count"}, "expect_count cannot be negative")
	}
	return d
}

// deletedDoc is one deleted document as kept in the undo state.
type deletedDoc struct {
	ID        string          `json:"id"`
	Rev       string          `json:"rev"`       // revision deleted
	Tombstone string          `json:"tombstone"` // revision of the deletion
	Body      json.RawMessage `json:"body"`      // with _attachments inline
}

type deleteUndo struct {
	Server   string       `json:"server"`
	Database string       `json:"database"`
	Docs     []deletedDoc `json:"docs"`
}

// selectDocs lists the documents the inputs designate, sorted by id.
func selectDocs(ctx context.Context, c *Client, in cty.Value) ([]map[string]any, error) {
	db := ctyx.StringAttr(in, "database")
	var docs []map[string]any
	ids := listAttr(in, "ids")
	sel, err := inputSelector(in)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the selector", "%v", err)
	}
	if sel != nil {
		res, err := findDocs(ctx, c, db, sel, nil, 0, 1000)
		if err != nil {
			return nil, err
		}
		docs = res.Docs
		if !ctyx.Attr(in, "ids").IsNull() {
			keep := map[string]bool{}
			for _, id := range ids {
				keep[id] = true
			}
			out := docs[:0]
			for _, d := range docs {
				if id, _ := d["_id"].(string); keep[id] {
					out = append(out, d)
				}
			}
			docs = out
		}
	} else {
		for _, id := range ids {
			d, err := c.GetDoc(ctx, db, id, nil)
			if kindOf(err) == sdk.KindNotFound {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read %s/%s: %w", db, id, err)
			}
			docs = append(docs, d)
		}
	}
	exclude := map[string]bool{}
	for _, id := range listAttr(in, "exclude_ids") {
		exclude[id] = true
	}
	maxV := ctyx.Attr(in, "max_versions")
	vfield, vkey := ctyx.StringAttr(in, "version_field"), ctyx.StringAttr(in, "version_key")
	if vfield == "" {
		vfield = "version"
	}
	if vkey == "" {
		vkey = "name"
	}
	out := docs[:0]
	for _, d := range docs {
		id, _ := d["_id"].(string)
		if exclude[id] || strings.HasPrefix(id, "_design/") {
			continue
		}
		if !maxV.IsNull() && maxV.IsKnown() {
			k, _ := lookup(d, vkey)
			ks, _ := k.(string)
			if ks == "" || !maxV.HasIndex(cty.StringVal(ks)).True() {
				continue
			}
			limit := maxV.Index(cty.StringVal(ks))
			if limit.IsNull() {
				continue
			}
			v, _ := lookup(d, vfield)
			vs, _ := v.(string)
			if vs == "" || compareVersions(vs, limit.AsString()) > 0 {
				continue
			}
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := out[i]["_id"].(string)
		b, _ := out[j]["_id"].(string)
		return a < b
	})
	return out, nil
}

// describeDelete says what a delete_docs step whose inputs are not all
// known yet will delete, from the inputs that are.
func describeDelete(in cty.Value) string {
	var b strings.Builder
	b.WriteString("delete the documents")
	if db := ctyx.StringAttr(in, "database"); db != "" {
		b.WriteString(" of " + db)
	}
	if dt := ctyx.StringAttr(in, "doc_type"); dt != "" {
		fmt.Fprintf(&b, " whose docType is %s (in any case)", dt)
	}
	if sv := ctyx.Attr(in, "selector"); sv.IsWhollyKnown() && !sv.IsNull() {
		if sel, err := selectorFrom(sv); err == nil {
			fmt.Fprintf(&b, " matching %s", mustJSON(sel))
		}
	}
	switch ev := ctyx.Attr(in, "exclude_ids"); {
	case !ev.IsWhollyKnown():
		b.WriteString(", except those exclude_ids names (known at apply time)")
	case !ev.IsNull() && ev.LengthInt() > 0:
		fmt.Fprintf(&b, ", except %s", strings.Join(listAttr(in, "exclude_ids"), ", "))
	}
	if n, ok := ctyx.IntAttr(in, "expect_count", 0); ok {
		fmt.Fprintf(&b, "; exactly %d expected, else nothing is deleted", n)
	}
	if !in.IsWhollyKnown() {
		b.WriteString(" (the list is known at apply time)")
	}
	return b.String()
}

// guard applies expect_count and max_count.
func guard(in cty.Value, n int) error {
	if want, ok := ctyx.IntAttr(in, "expect_count", 0); ok && int64(n) != want {
		return sdk.Errorf(sdk.KindConflict, false, "look at what matches (runbook plan, or couchdb.find), then fix the selector or expect_count",
			"%d documents match, expected %d: nothing deleted", n, want)
	}
	if max, _ := ctyx.IntAttr(in, "max_count", 1000); int64(n) > max {
		return sdk.Errorf(sdk.KindConflict, false, "narrow the selector or raise max_count",
			"%d documents match, more than max_count %d: nothing deleted", n, max)
	}
	return nil
}

func idsOf(docs []map[string]any) []string {
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		id, _ := d["_id"].(string)
		out = append(out, id)
	}
	return out
}

var _ sdk.Planner = deleteDocsAction{}

func (deleteDocsAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: describeDelete(req.Inputs)}, nil
	}
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	docs, err := selectDocs(ctx, c, req.Inputs)
	if err != nil {
		return nil, err
	}
	res := &sdk.PlanResult{Summary: fmt.Sprintf("delete %d documents from %s", len(docs), ctyx.StringAttr(req.Inputs, "database")),
		Counts: map[string]int64{"delete": int64(len(docs))}}
	for i, id := range idsOf(docs) {
		if i == 50 {
			res.Details = append(res.Details, fmt.Sprintf("... and %d more", len(docs)-50))
			break
		}
		res.Details = append(res.Details, "delete "+id)
	}
	if err := guard(req.Inputs, len(docs)); err != nil {
		res.Warnings = append(res.Warnings, sdk.Classify(err).Err.Error())
	}
	return res, nil
}

func (a deleteDocsAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	db := ctyx.StringAttr(req.Inputs, "database")
	docs, err := selectDocs(ctx, c, req.Inputs)
	if err != nil {
		return nil, err
	}
	undo := deleteUndo{Server: c.Name(), Database: db}
	deleted := []string{}
	done := map[string]bool{} // ids in deleted
	markDeleted := func(id string) {
		if !done[id] {
			done[id] = true
			deleted = append(deleted, id)
		}
	}
	// A resumed attempt: what the interrupted one had planned and already
	// deleted no longer matches (or matches through a branch it has not
	// reached yet), but counts for the guards and belongs in the undo state.
	if len(req.Checkpoint) > 0 {
		if prev, err := unpackUndo(req.Checkpoint); err == nil && prev.Database == db && c.Is(prev.Server) {
			for _, p := range prev.Docs {
				tomb, err := c.deletedLeaf(ctx, db, p.ID, p.Rev)
				if err != nil {
					return nil, fmt.Errorf("read %s/%s: %w", db, p.ID, err)
				}
				if tomb != "" {
					p.Tombstone = tomb
					undo.Docs = append(undo.Docs, p)
					markDeleted(p.ID)
				}
			}
			if len(deleted) > 0 {
				ev.Log(sdk.LevelInfo, fmt.Sprintf("%d documents were deleted by the interrupted attempt", len(deleted)))
			}
		}
	}
	n := len(deleted)
	for _, d := range docs {
		if id, _ := d["_id"].(string); !done[id] {
			n++
		}
	}
	if err := guard(req.Inputs, n); err != nil {
		return nil, err
	}
	result := func() *sdk.Result {
		out := cty.ObjectVal(map[string]cty.Value{"deleted": strList(deleted), "count": cty.NumberIntVal(int64(len(deleted)))})
		var st []byte
		if len(undo.Docs) > 0 {
			st = packUndo(undo)
		}
		// The undo state holds whole documents (a user's password hash,
		// an application's tokens): sealed in the journal like a secret.
		return &sdk.Result{Outputs: out, UndoState: st, SensitiveUndoState: st != nil}
	}
	// Read every live leaf of every document first (a document with
	// conflicting branches shows its next branch when the winner alone is
	// deleted): nothing is deleted before every body is safely in hand.
	var items []deleteItem
	branches := 0
	for _, d := range docs {
		id, _ := d["_id"].(string)
		ls, err := c.leaves(ctx, db, id, true)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", db, id, err)
		}
		live := liveLeaves(ls)
		if len(live) > 1 {
			branches += len(live) - 1
		}
		for _, l := range live {
			b, _ := json.Marshal(l.Body)
			items = append(items, deleteItem{id, l.Rev, b})
		}
	}
	if branches > 0 {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%d conflicting revisions are deleted with their documents", branches))
	}
	// Journal the bodies before deleting anything, so an interrupted
	// attempt's deletions can still be undone after a resume.
	if len(items) > 0 {
		plan := undo
		for _, it := range items {
			plan.Docs = append(plan.Docs, deletedDoc{ID: it.id, Rev: it.rev, Body: it.body})
		}
		if err := sdk.CheckpointSensitive(ev, packUndo(plan)); err != nil {
			return result(), fmt.Errorf("journal the documents to delete: %w", err)
		}
	}
	const chunk = 200
	for i := 0; i < len(items); i += chunk {
		part := items[i:min(i+chunk, len(items))]
		body := struct {
			Docs []map[string]any `json:"docs"`
		}{}
		for _, it := range part {
			body.Docs = append(body.Docs, map[string]any{"_id": it.id, "_rev": it.rev, "_deleted": true})
		}
		var res []bulkResult
		if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: body, NoRetry: true}, &res); err != nil {
			return result(), fmt.Errorf("delete from %s: %w", db, err)
		}
		tombs, unsure, failed := matchDeletions(part, res)
		for _, j := range unsure {
			// Several branches of one document in the request, or no
			// answer for it: which deletion descends from which revision
			// is read back.
			it := part[j]
			t, err := c.deletedLeaf(ctx, db, it.id, it.rev)
			if err != nil {
				return result(), fmt.Errorf("read %s/%s: %w", db, it.id, err)
			}
			if t == "" {
				failed = append(failed, fmt.Sprintf("%s@%s: not deleted", it.id, it.rev))
				continue
			}
			tombs[j] = t
		}
		for j, it := range part {
			if t, ok := tombs[j]; ok {
				undo.Docs = append(undo.Docs, deletedDoc{ID: it.id, Rev: it.rev, Tombstone: t, Body: it.body})
				markDeleted(it.id)
			}
		}
		ev.Progress(int64(len(deleted)), int64(len(docs)), "docs")
		if len(failed) > 0 {
			return result(), sdk.Errorf(sdk.KindConflict, true, "the documents changed meanwhile; run the step again",
				"could not delete %d revisions: %s", len(failed), strings.Join(failed, "; "))
		}
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("deleted %d documents (%d revisions) from %s", len(deleted), len(undo.Docs), db))
	return result(), nil
}

// deleteItem is one live revision delete_docs deletes.
type deleteItem struct {
	id, rev string
	body    json.RawMessage
}

// bulkResult is one entry of a _bulk_docs answer.
type bulkResult struct {
	ID     string `json:"id"`
	Rev    string `json:"rev"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// matchDeletions pairs the deletions sent (part) with the _bulk_docs
// answer by document id, not by position: pouchdb-server answers in
// another order than asked (its validation wrapper puts each document's
// answer in the order its validation ends). It returns the deletion
// revision of each index of part it can tell, the indexes it cannot (an id
// sent more than once, as for a conflicted document's branches, or left
// out of the answer), and the refused deletions.
func matchDeletions(part []deleteItem, res []bulkResult) (tombs map[int]string, unsure []int, failed []string) {
	sent := map[string]int{}
	for _, it := range part {
		sent[it.id]++
	}
	answers := map[string][]bulkResult{}
	for _, r := range res {
		answers[r.ID] = append(answers[r.ID], r)
	}
	tombs = map[int]string{}
	for j, it := range part {
		rs := answers[it.id]
		switch {
		case sent[it.id] != 1 || len(rs) != 1:
			unsure = append(unsure, j)
		case rs[0].Error != "" || rs[0].Rev == "":
			failed = append(failed, fmt.Sprintf("%s@%s: %s %s", it.id, it.rev, rs[0].Error, rs[0].Reason))
		default:
			tombs[j] = rs[0].Rev
		}
	}
	return tombs, unsure, failed
}

var _ sdk.Undoer = deleteDocsAction{}

// Undo writes every deleted revision back (same body and attachments) as a
// new revision on top of its deletion, every branch of a conflicted
// document included. It first checks that each deletion is still what the
// document ends with: a document written or recreated since stops the undo
// (KindConflict naming it) unless req.Force.
func (deleteDocsAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if len(req.UndoState) == 0 {
		return nil
	}
	undo, err := unpackUndo(req.UndoState)
	if err != nil {
		return err
	}
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return err
	}
	defer c.Close()
	byID := map[string][]deletedDoc{}
	var ids []string
	for _, d := range undo.Docs {
		if _, ok := byID[d.ID]; !ok {
			ids = append(ids, d.ID)
		}
		byID[d.ID] = append(byID[d.ID], d)
	}
	type restore struct {
		d       deletedDoc
		onto    string // revision to write on top of
		drifted bool
	}
	var todo []restore
	var drift []string
	for _, id := range ids {
		ls, err := c.leaves(ctx, undo.Database, id, true)
		if err != nil {
			return fmt.Errorf("read %s/%s: %w", undo.Database, id, err)
		}
		ours := map[string]bool{} // leaves the step or an earlier undo left
		var changed []string
		for _, d := range byID[id] {
			state := "gone"
			for _, l := range ls {
				switch {
				case l.Rev == d.Tombstone && l.Deleted:
					state = "deleted"
				case l.Parent == d.Tombstone && !l.Deleted && sameBody(l.Body, d.Body):
					state = "restored"
				default:
					continue
				}
				ours[l.Rev] = true
				break
			}
			switch state {
			case "deleted":
				todo = append(todo, restore{d: d, onto: d.Tombstone})
			case "restored":
			default:
				changed = append(changed, fmt.Sprintf("deletion %s written over", d.Tombstone))
				todo = append(todo, restore{d: d, drifted: true})
			}
		}
		for _, l := range liveLeaves(ls) {
			if !ours[l.Rev] {
				changed = append(changed, "live revision "+l.Rev+" written since")
			}
		}
		if len(changed) > 0 {
			drift = append(drift, fmt.Sprintf("%s (%s)", id, strings.Join(changed, ", ")))
		}
	}
	if len(drift) > 0 {
		if !req.Force {
			return driftError("documents of "+undo.Database, drift)
		}
		ev.Log(sdk.LevelWarn, fmt.Sprintf("forced: restoring over changes to %s", strings.Join(drift, "; ")))
	}
	var failed []string
	for i, r := range todo {
		var body map[string]any
		if err := json.Unmarshal(r.d.Body, &body); err != nil {
			return sdk.Errorf(sdk.KindInternal, false, "", "undo state of %s: %v", r.d.ID, err)
		}
		onto := r.onto
		if r.drifted {
			// Forced: on top of whatever the document is now.
			cur, err := c.GetDoc(ctx, undo.Database, r.d.ID, nil)
			if err == nil {
				onto, _ = cur["_rev"].(string)
			} else if kindOf(err) != sdk.KindNotFound {
				return fmt.Errorf("read %s/%s: %w", undo.Database, r.d.ID, err)
			}
		}
		if onto != "" {
			body["_rev"] = onto
		}
		if _, err := c.PutDoc(ctx, undo.Database, r.d.ID, body); err != nil {
			if kindOf(err) == sdk.KindConflict {
				failed = append(failed, fmt.Sprintf("%s@%s", r.d.ID, r.d.Rev))
				continue
			}
			return fmt.Errorf("restore %s/%s: %w", undo.Database, r.d.ID, err)
		}
		ev.Progress(int64(i+1), int64(len(todo)), "revisions")
	}
	if len(failed) > 0 {
		return sdk.Errorf(sdk.KindConflict, true, "these documents changed during the undo; run the rollback again",
			"not restored: %s", strings.Join(failed, ", "))
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("restored %d documents (%d revisions) in %s", len(ids), len(todo), undo.Database))
	return nil
}

// sameBody compares a document with a kept body, ignoring _rev and the
// attachments' revpos.
func sameBody(cur map[string]any, kept json.RawMessage) bool {
	var k map[string]any
	if json.Unmarshal(kept, &k) != nil {
		return false
	}
	return canonical(cur) == canonical(k)
}

func canonical(d map[string]any) string {
	c := map[string]any{}
	for k, v := range d {
		if k == "_rev" || k == "_revisions" {
			continue
		}
		c[k] = v
	}
	if atts, ok := c["_attachments"].(map[string]any); ok {
		na := map[string]any{}
		for n, a := range atts {
			am, _ := a.(map[string]any)
			na[n] = map[string]any{"content_type": am["content_type"], "data": am["data"]}
		}
		c["_attachments"] = na
	}
	b, _ := json.Marshal(c)
	return string(b)
}

func packUndo(u deleteUndo) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_ = json.NewEncoder(zw).Encode(u)
	_ = zw.Close()
	return buf.Bytes()
}

func unpackUndo(b []byte) (deleteUndo, error) {
	var u deleteUndo
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return u, sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return u, sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	return u, nil
}

func strList(s []string) cty.Value {
	if len(s) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vals := make([]cty.Value, len(s))
	for i, x := range s {
		vals[i] = cty.StringVal(x)
	}
	return cty.ListVal(vals)
}

// deletedLeaf returns the revision of the deletion whose parent is rev,
// or "" when the document was not deleted from rev.
func (c *Client) deletedLeaf(ctx context.Context, db, id, rev string) (string, error) {
	ls, err := c.leaves(ctx, db, id, false)
	if err != nil {
		return "", err
	}
	for _, l := range ls {
		if l.Deleted && l.Parent == rev {
			return l.Rev, nil
		}
	}
	return "", nil
}

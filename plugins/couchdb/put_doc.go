package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// putDocAction is couchdb.put_doc.
type putDocAction struct{}

var (
	_ sdk.Action    = putDocAction{}
	_ sdk.Undoer    = putDocAction{}
	_ sdk.Validator = putDocAction{}
)

func (putDocAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""),
		sdk.Attribute{Name: "database", Type: cty.String, Required: true, Description: `Database, e.g. "global/instances" (slashes are escaped).`},
		sdk.Attribute{Name: "id", Type: cty.String, Description: "Document id (default: the doc's _id)."},
		sdk.Attribute{Name: "doc", Type: cty.DynamicPseudoType, Required: true, Description: "The document body, as an object or a JSON string; _rev is ignored (the current revision is replaced)."},
		sdk.Attribute{Name: "create_database", Type: cty.Bool, Description: "Create the database when it is missing (default false)."},
	)
	return sdk.ActionSchema{
		Name:        "put_doc",
		Description: "Create or replace one document; native undo puts the previous version back (or deletes a created one). The previous version, kept for the undo, is sealed in the journal like a secret (it may hold a password hash or tokens).",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "id", Type: cty.String},
			{Name: "rev", Type: cty.String},
			{Name: "changed", Type: cty.Bool, Description: "False when the document already had this content."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func docFrom(v cty.Value) (map[string]any, error) {
	if v.IsNull() {
		return nil, fmt.Errorf("doc is required")
	}
	v, _ = v.UnmarkDeep()
	var raw []byte
	if v.Type() == cty.String {
		raw = []byte(v.AsString())
	} else {
		b, err := ctySimpleJSON(v)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("doc must be a JSON object: %v", err)
	}
	return doc, nil
}

func (putDocAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateURL(in, "url")
	dv := ctyx.Attr(in, "doc")
	if dv.IsWhollyKnown() && !dv.IsNull() {
		doc, err := docFrom(dv)
		if err != nil {
			return d.Errorf([]string{"doc"}, "%v", err)
		}
		if iv := ctyx.Attr(in, "id"); iv.IsKnown() && iv.IsNull() {
			if id, _ := doc["_id"].(string); id == "" {
				d = d.Errorf([]string{"id"}, "set id or give the doc an _id")
			}
		}
	}
	return d
}

type putUndo struct {
	Server   string          `json:"server"`
	Database string          `json:"database"`
	ID       string          `json:"id"`
	Existed  bool            `json:"existed"`
	Previous json.RawMessage `json:"previous,omitempty"` // with attachments inline
	Written  string          `json:"written"`            // revision this step wrote
}

func (a putDocAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	db := ctyx.StringAttr(req.Inputs, "database")
	doc, err := docFrom(ctyx.Attr(req.Inputs, "doc"))
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the doc input", "%v", err)
	}
	id := ctyx.StringAttr(req.Inputs, "id")
	if id == "" {
		id, _ = doc["_id"].(string)
	}
	if id == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set id or give the doc an _id", "no document id")
	}
	doc["_id"] = id
	delete(doc, "_rev")
	if ctyx.BoolAttr(req.Inputs, "create_database", false) {
		if _, err := c.CreateDB(ctx, db); err != nil {
			return nil, fmt.Errorf("create %s: %w", db, err)
		}
	}
	undo := putUndo{Server: c.Name(), Database: db, ID: id}
	cur, err := c.GetDoc(ctx, db, id, url.Values{"attachments": {"true"}})
	switch {
	case err == nil:
		undo.Existed = true
		rev, _ := cur["_rev"].(string)
		if sameBody(cur, mustJSON(doc)) {
			// Written by an interrupted attempt of this step? Its
			// checkpoint holds what was there before.
			var prev putUndo
			if len(req.Checkpoint) > 0 && json.Unmarshal(req.Checkpoint, &prev) == nil &&
				c.Is(prev.Server) && prev.Database == db && prev.ID == id {
				prev.Written = rev
				st, _ := json.Marshal(prev)
				ev.Log(sdk.LevelInfo, fmt.Sprintf("%s/%s was written by the interrupted attempt", db, id))
				return a.result(id, rev, true, st), nil
			}
			ev.Log(sdk.LevelInfo, fmt.Sprintf("%s/%s already has this content", db, id))
			return a.result(id, rev, false, nil), nil
		}
		prev := map[string]any{}
		for k, v := range cur {
			if k != "_rev" {
				prev[k] = v
			}
		}
		undo.Previous = mustJSON(prev)
		doc["_rev"] = rev
	case kindOf(err) == sdk.KindNotFound:
	default:
		return nil, fmt.Errorf("read %s/%s: %w", db, id, err)
	}
	// Journal the previous version before writing over it.
	cp, _ := json.Marshal(undo)
	if err := undo.checkpoint(ev, cp); err != nil {
		return nil, fmt.Errorf("journal the previous version: %w", err)
	}
	rev, err := c.PutDoc(ctx, db, id, doc)
	if err != nil {
		return nil, fmt.Errorf("write %s/%s: %w", db, id, err)
	}
	undo.Written = rev
	ev.Log(sdk.LevelInfo, fmt.Sprintf("wrote %s/%s at %s", db, id, rev))
	st, _ := json.Marshal(undo)
	return a.result(id, rev, true, st), nil
}

// result is the step's result. An undo state that holds the document the
// step overwrote (a user's password hash, an application's tokens) is
// sealed in the journal like a secret; one that only names the document
// the step created is not.
func (a putDocAction) result(id, rev string, changed bool, undo []byte) *sdk.Result {
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"id": cty.StringVal(id), "rev": cty.StringVal(rev), "changed": cty.BoolVal(changed),
	}), UndoState: undo, SensitiveUndoState: holdsBody(undo)}
}

// holdsBody reports whether a put_doc undo state holds a previous version.
func holdsBody(undo []byte) bool {
	var u putUndo
	return len(undo) > 0 && (json.Unmarshal(undo, &u) != nil || len(u.Previous) > 0)
}

// checkpoint journals cp, the undo state before the write: sealed when it
// holds the previous version.
func (u putUndo) checkpoint(ev sdk.Events, cp []byte) error {
	if len(u.Previous) > 0 {
		return sdk.CheckpointSensitive(ev, cp)
	}
	return ev.Checkpoint(cp)
}

var _ sdk.Undoer = putDocAction{}

// Undo puts the previous version back, or deletes the document when the
// step created it, provided nobody changed it since.
func (putDocAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if len(req.UndoState) == 0 {
		return nil
	}
	var u putUndo
	if err := json.Unmarshal(req.UndoState, &u); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return err
	}
	defer c.Close()
	cur, err := c.GetDoc(ctx, u.Database, u.ID, nil)
	if kindOf(err) == sdk.KindNotFound {
		if !u.Existed {
			return nil
		}
		cur = nil
	} else if err != nil {
		return fmt.Errorf("read %s/%s: %w", u.Database, u.ID, err)
	}
	rev, _ := cur["_rev"].(string)
	if rev != u.Written {
		now := "deleted"
		if cur != nil {
			now = "at " + rev
		}
		if !req.Force {
			return driftError("the document", []string{fmt.Sprintf("%s/%s is %s, not at the revision this step wrote (%s)", u.Database, u.ID, now, u.Written)})
		}
		ev.Log(sdk.LevelWarn, fmt.Sprintf("forced: %s/%s is %s, not at the revision this step wrote (%s); undoing over it", u.Database, u.ID, now, u.Written))
	}
	if !u.Existed {
		err := c.JSON(ctx, Request{Method: "DELETE", Path: docPath(u.Database, u.ID), Query: url.Values{"rev": {rev}}, NoRetry: true}, nil)
		if err != nil {
			return fmt.Errorf("delete %s/%s: %w", u.Database, u.ID, err)
		}
		ev.Log(sdk.LevelInfo, fmt.Sprintf("deleted %s/%s, which this step had created", u.Database, u.ID))
		return nil
	}
	var prev map[string]any
	if err := json.Unmarshal(u.Previous, &prev); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	if rev != "" {
		prev["_rev"] = rev
	}
	if _, err := c.PutDoc(ctx, u.Database, u.ID, prev); err != nil {
		return fmt.Errorf("restore %s/%s: %w", u.Database, u.ID, err)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("restored the previous version of %s/%s", u.Database, u.ID))
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// copySecurityAction is couchdb.copy_security: replication does not carry
// _security objects, so they are copied apart.
type copySecurityAction struct{}

var (
	_ sdk.Action    = copySecurityAction{}
	_ sdk.Undoer    = copySecurityAction{}
	_ sdk.Validator = copySecurityAction{}
)

func (copySecurityAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("source_", "source"), connAttrs("target_", "target")...)
	in = append(in, databaseAttrs...)
	return sdk.ActionSchema{
		Name:        "copy_security",
		Description: "Copy the _security object (admins and members) of databases to the target server.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "databases", Type: cty.List(cty.String)},
			{Name: "changed", Type: cty.List(cty.String), Description: "Databases whose target _security changed."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (copySecurityAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateDatabases(in)
	d = append(d, validateURL(in, "source_url")...)
	return append(d, validateURL(in, "target_url")...)
}

// securityUndo keeps the target's previous _security objects.
type securityUndo struct {
	Target   string                     `json:"target"`
	Previous map[string]json.RawMessage `json:"previous"`
	// Written is what the step wrote, to tell later changes apart.
	Written map[string]json.RawMessage `json:"written,omitempty"`
}

func getSecurity(ctx context.Context, c *Client, db string) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.JSON(ctx, Request{Method: "GET", Path: dbPath(db) + "/_security"}, &raw); err != nil {
		return nil, err
	}
	if len(raw) == 0 || string(raw) == "null" {
		raw = json.RawMessage("{}")
	}
	return raw, nil
}

func putSecurity(ctx context.Context, c *Client, db string, sec json.RawMessage) error {
	return c.JSON(ctx, Request{Method: "PUT", Path: dbPath(db) + "/_security", Body: []byte(sec)}, nil)
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

func (a copySecurityAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	src, dst, dbs, err := openPair(ctx, req.Inputs)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	defer dst.Close()
	undo := securityUndo{Target: dst.Name(), Previous: map[string]json.RawMessage{}, Written: map[string]json.RawMessage{}}
	out := struct {
		Databases []string `cty:"databases"`
		Changed   []string `cty:"changed"`
	}{Databases: dbs, Changed: []string{}}
	result := func() *sdk.Result {
		b, _ := json.Marshal(undo)
		v, _ := sdk.Encode(a.Schema(), out)
		return &sdk.Result{Outputs: v, UndoState: b}
	}
	// A resumed attempt keeps what the interrupted one recorded before
	// writing (the objects it replaced).
	var prev securityUndo
	if len(req.Checkpoint) > 0 && json.Unmarshal(req.Checkpoint, &prev) == nil && dst.Is(prev.Target) {
		for db, sec := range prev.Previous {
			undo.Previous[db] = sec
		}
		for db, sec := range prev.Written {
			undo.Written[db] = sec
		}
	}
	for i, db := range dbs {
		sec, err := getSecurity(ctx, src, db)
		if err != nil {
			return result(), fmt.Errorf("read _security of %s on the source: %w", db, err)
		}
		old, err := getSecurity(ctx, dst, db)
		if err != nil {
			return result(), fmt.Errorf("read _security of %s on the target: %w", db, err)
		}
		if sameJSON(sec, old) {
			if _, ok := undo.Previous[db]; ok {
				out.Changed = append(out.Changed, db)
			}
			continue
		}
		undo.Previous[db] = old
		undo.Written[db] = sec
		cp, _ := json.Marshal(undo)
		if err := ev.Checkpoint(cp); err != nil {
			return result(), fmt.Errorf("journal the previous _security: %w", err)
		}
		if err := putSecurity(ctx, dst, db, sec); err != nil {
			return result(), fmt.Errorf("write _security of %s on the target: %w", db, err)
		}
		out.Changed = append(out.Changed, db)
		ev.Log(sdk.LevelInfo, "copied _security of "+db)
		ev.Progress(int64(i+1), int64(len(dbs)), "databases")
	}
	return result(), nil
}

var _ sdk.Undoer = copySecurityAction{}

// Undo puts back the target's previous _security objects.
func (copySecurityAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var u securityUndo
	if len(req.UndoState) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.UndoState, &u); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	dst, err := connFrom(req.Inputs, "target_").client()
	if err != nil {
		return err
	}
	defer dst.Close()
	dbs := make([]string, 0, len(u.Previous))
	for db := range u.Previous {
		dbs = append(dbs, db)
	}
	sort.Strings(dbs)
	// Drift: a _security object changed after the step is not ours to
	// overwrite (states written before Written was kept are not checked).
	var drift []string
	for _, db := range dbs {
		want, ok := u.Written[db]
		if !ok {
			continue
		}
		cur, err := getSecurity(ctx, dst, db)
		if kindOf(err) == sdk.KindNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("read _security of %s: %w", db, err)
		}
		if !sameJSON(cur, want) {
			drift = append(drift, fmt.Sprintf("%s/_security is %s, the step wrote %s", db, cur, want))
		}
	}
	if len(drift) > 0 {
		if !req.Force {
			return driftError("_security objects", drift)
		}
		ev.Log(sdk.LevelWarn, "forced: restoring over changes: "+strings.Join(drift, "; "))
	}
	for _, db := range dbs {
		sec := u.Previous[db]
		err := putSecurity(ctx, dst, db, sec)
		if kindOf(err) == sdk.KindNotFound {
			ev.Log(sdk.LevelWarn, db+" no longer exists on the target; its _security is gone with it")
			continue
		}
		if err != nil {
			return fmt.Errorf("restore _security of %s: %w", db, err)
		}
		ev.Log(sdk.LevelInfo, "restored the previous _security of "+db)
	}
	return nil
}

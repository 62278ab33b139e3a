package couchdb

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// restoreAction is couchdb.restore.
type restoreAction struct{}

var (
	_ sdk.Action    = restoreAction{}
	_ sdk.Undoer    = restoreAction{}
	_ sdk.Validator = restoreAction{}
)

func (restoreAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""),
		sdk.Attribute{Name: "database", Type: cty.String, Description: "Database to restore into (default: the one named in the dump)."},
		sdk.Attribute{Name: "path", Type: cty.String, Required: true, Description: "A file written by couchdb.dump."},
		sdk.Attribute{Name: "create_target", Type: cty.Bool, Description: "Create the database when missing (default true)."},
		sdk.Attribute{Name: "restore_security", Type: cty.Bool, Description: "Also write the dump's _security object (default false)."},
		sdk.Attribute{Name: "batch_size", Type: cty.Number, Description: "Revisions per _bulk_docs request (default 500)."},
		sdk.Attribute{Name: "replace", Type: cty.Bool, Description: "Delete the database first, so it ends exactly as dumped (default false). This is how a runbook rolls a database back to a dump; it cannot itself be undone."},
	)
	return sdk.ActionSchema{
		Name:        "restore",
		Description: "Load a dump back into a database, revisions and history included (existing revisions are kept), and its _local documents.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "database", Type: cty.String},
			{Name: "docs_written", Type: cty.Number},
			{Name: "doc_write_failures", Type: cty.Number},
			{Name: "created", Type: cty.Bool},
			{Name: "local_docs", Type: cty.Number, Description: "_local documents written back."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (restoreAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateURL(in, "url")
}

type restoreUndo struct {
	Server   string `json:"server"`
	Database string `json:"database"`
	Created  bool   `json:"created"`
	Replaced bool   `json:"replaced,omitempty"`
	// EndSeq is the database's update_seq when the restore was done: undo
	// deletes a created database only if nobody wrote to it since.
	EndSeq json.RawMessage `json:"end_seq,omitempty"`
}

func (a restoreAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	path := ctyx.StringAttr(req.Inputs, "path")
	f, err := os.Open(path)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindNotFound, false, "check the dump's path", "open dump: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give a file written by couchdb.dump", "%s is not a gzip dump: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<30)
	if !sc.Scan() {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give a file written by couchdb.dump", "%s is empty or unreadable: %v", path, sc.Err())
	}
	var hdr dumpHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Format != dumpFormat {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give a file written by couchdb.dump", "%s is not a couchdb dump", path)
	}
	db := ctyx.StringAttr(req.Inputs, "database")
	if db == "" {
		db = hdr.Database
	}
	undo := restoreUndo{Server: c.Name(), Database: db}
	var written, failed, locals int64
	result := func() *sdk.Result {
		st, _ := json.Marshal(undo)
		return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
			"database": cty.StringVal(db), "docs_written": cty.NumberIntVal(written),
			"doc_write_failures": cty.NumberIntVal(failed), "created": cty.BoolVal(undo.Created),
			"local_docs": cty.NumberIntVal(locals),
		}), UndoState: st}
	}
	exists, err := c.Exists(ctx, db)
	if err != nil {
		return nil, err
	}
	if exists && ctyx.BoolAttr(req.Inputs, "replace", false) {
		ev.Log(sdk.LevelWarn, fmt.Sprintf("deleting %s to restore it exactly as dumped", db))
		if err := c.DeleteDB(ctx, db); err != nil {
			return nil, fmt.Errorf("delete %s: %w", db, err)
		}
		exists, undo.Replaced = false, true
	}
	if !exists {
		if !ctyx.BoolAttr(req.Inputs, "create_target", true) {
			return nil, sdk.Errorf(sdk.KindNotFound, false, "create it or set create_target = true", "database %s does not exist", db)
		}
		created, err := c.CreateDB(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", db, err)
		}
		undo.Created = created && !undo.Replaced
		cp, _ := json.Marshal(undo)
		if err := ev.Checkpoint(cp); err != nil {
			return result(), fmt.Errorf("journal the creation of %s: %w", db, err)
		}
	} else {
		// Created by an interrupted attempt of this step?
		var prev restoreUndo
		if len(req.Checkpoint) > 0 && json.Unmarshal(req.Checkpoint, &prev) == nil &&
			c.Is(prev.Server) && prev.Database == db && prev.Created {
			undo.Created = true
		}
	}
	if ctyx.BoolAttr(req.Inputs, "restore_security", false) && len(hdr.Security) > 0 {
		if err := putSecurity(ctx, c, db, hdr.Security); err != nil {
			return result(), fmt.Errorf("restore _security of %s: %w", db, err)
		}
	}
	bs, _ := ctyx.IntAttr(req.Inputs, "batch_size", 500)
	var batch []json.RawMessage
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		fl, err := c.BulkDocsReplicated(ctx, db, batch)
		if err != nil {
			return err
		}
		written += int64(len(batch) - len(fl))
		failed += int64(len(fl))
		for _, x := range fl {
			ev.Log(sdk.LevelWarn, fmt.Sprintf("%s refused: %s %s", x.ID, x.Error, x.Reason))
		}
		batch = batch[:0]
		ev.Progress(written+failed, hdr.DocCount, "docs")
		return nil
	}
	for sc.Scan() {
		line := append(json.RawMessage(nil), sc.Bytes()...)
		if len(line) == 0 {
			continue
		}
		batch = append(batch, line)
		if int64(len(batch)) >= bs {
			if err := flush(); err != nil {
				return result(), fmt.Errorf("restore %s: %w", db, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return result(), sdk.Errorf(sdk.KindInvalid, false, "the dump is truncated or corrupt; use another copy", "read %s: %v", path, err)
	}
	if err := flush(); err != nil {
		return result(), fmt.Errorf("restore %s: %w", db, err)
	}
	if err := writeLocalDocs(ctx, c, db, hdr.Local); err != nil {
		return result(), err
	}
	locals = int64(len(hdr.Local))
	if undo.Created {
		if info, err := c.DBInfo(ctx, db); err == nil {
			undo.EndSeq = info.UpdateSeq
		}
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("restored %d revisions and %d _local documents into %s", written, locals, db))
	if failed > 0 {
		return result(), sdk.Errorf(sdk.KindQuota, false, "see the refused documents in the log", "%d revisions refused by %s", failed, db)
	}
	return result(), nil
}

var _ sdk.Undoer = restoreAction{}

// Undo deletes the database when this step created it. Revisions merged
// into an existing database cannot be told apart from the others, so that
// case is reported, not guessed.
func (restoreAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var u restoreUndo
	if len(req.UndoState) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.UndoState, &u); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
	}
	if u.Replaced {
		return sdk.Errorf(sdk.KindConflict, false, "the database was replaced by the dump; restore a newer dump if needed",
			"cannot undo a restore that replaced %s", u.Database)
	}
	if !u.Created {
		return sdk.Errorf(sdk.KindConflict, false, "restore into an existing database merges revisions; restore a dump taken before, or clean up by hand",
			"cannot undo a restore into the existing database %s", u.Database)
	}
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return err
	}
	defer c.Close()
	if len(u.EndSeq) > 0 {
		info, err := c.DBInfo(ctx, u.Database)
		if kindOf(err) == sdk.KindNotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("database %s: %w", u.Database, err)
		}
		if n, _ := seqNumber(info.UpdateSeq); n != mustSeq(u.EndSeq) {
			msg := fmt.Sprintf("database %s was written to after the restore (update_seq %s, was %s)", u.Database, seqParam(info.UpdateSeq), seqParam(u.EndSeq))
			if !req.Force {
				return driftError("the database", []string{msg})
			}
			ev.Log(sdk.LevelWarn, "forced: "+msg)
		}
	}
	ev.Log(sdk.LevelInfo, "deleting "+u.Database+", which the restore created")
	return c.DeleteDB(ctx, u.Database)
}

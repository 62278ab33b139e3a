package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// replicateAction is couchdb.replicate.
type replicateAction struct{}

var (
	_ sdk.Action    = replicateAction{}
	_ sdk.Undoer    = replicateAction{}
	_ sdk.Validator = replicateAction{}
	_ sdk.Planner   = replicateAction{}
)

func (replicateAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("source_", "source"), connAttrs("target_", "target")...)
	in = append(in, databaseAttrs...)
	in = append(in,
		sdk.Attribute{Name: "mode", Type: cty.String, Description: `"plugin" (default): the plugin copies the data itself through the replication protocol, so the servers need not reach each other. "server": a _replicator document on the target does it (the target must reach the source).`},
		sdk.Attribute{Name: "create_target", Type: cty.Bool, Description: "Create missing target databases (default true)."},
		sdk.Attribute{Name: "batch_size", Type: cty.Number, Description: "Changes per batch (default 500)."},
		sdk.Attribute{Name: "workers", Type: cty.Number, Description: "Batches in flight at once (default 4)."},
		sdk.Attribute{Name: "checkpoint_interval", Type: cty.String, Description: `Least time between two checkpoints, e.g. "5s" (default); "0s" checkpoints after every batch.`},
		sdk.Attribute{Name: "verify", Type: cty.String, Description: `"full" (default): look for missing revisions of every document on the target (counts are reported); "counts": require at least as many documents on the target; "none".`},
		sdk.Attribute{Name: "gzip", Type: cty.Bool, Description: "Ask both servers for gzip-compressed answers: fewer bytes on a slow link, but much more CPU on the source (default false: attachments compress poorly)."},
		sdk.Attribute{Name: "poll_interval", Type: cty.String, Description: `mode = "server": how often to poll the replication state (default "2s").`},
	)
	return sdk.ActionSchema{
		Name:        "replicate",
		Description: "Copy databases from a source server to a target server with checkpoints, resume and verification.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "databases", Type: cty.List(cty.String), Description: "Databases replicated."},
			{Name: "created", Type: cty.List(cty.String), Description: "Target databases this step created (undo deletes them)."},
			{Name: "changes_read", Type: cty.Number, Description: "Changes read from the sources by this attempt."},
			{Name: "missing_found", Type: cty.Number, Description: "Revisions the targets lacked."},
			{Name: "docs_read", Type: cty.Number, Description: "Revisions read from the sources by this attempt."},
			{Name: "docs_written", Type: cty.Number, Description: "Revisions written by this attempt (see revisions_written for the whole step)."},
			{Name: "documents_written", Type: cty.Number, Description: "Documents that received revisions, over every attempt of the step (a resumed step counts what the interrupted attempts wrote, from the checkpoint)."},
			{Name: "revisions_written", Type: cty.Number, Description: "Revisions written (a document with conflicts or history has several), over every attempt of the step."},
			{Name: "doc_write_failures", Type: cty.Number},
			{Name: "bytes", Type: cty.Number, Description: "JSON bytes written (attachments included)."},
			{Name: "verified", Type: cty.Bool, Description: "Whether the final verification ran and passed."},
		},
		Capabilities:   sdk.Capabilities{Idempotent: true},
		MaxConcurrency: 4,
	}
}

func (replicateAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateDatabases(in)
	d = append(d, validateURL(in, "source_url")...)
	d = append(d, validateURL(in, "target_url")...)
	if v := ctyx.Attr(in, "mode"); v.IsKnown() && !v.IsNull() && v.AsString() != "plugin" && v.AsString() != "server" {
		d = d.Errorf([]string{"mode"}, `mode must be "plugin" or "server"`)
	}
	if v := ctyx.Attr(in, "verify"); v.IsKnown() && !v.IsNull() {
		switch v.AsString() {
		case "full", "counts", "none":
		default:
			d = d.Errorf([]string{"verify"}, `verify must be "full", "counts" or "none"`)
		}
	}
	for _, n := range []string{"checkpoint_interval", "poll_interval"} {
		if v := ctyx.Attr(in, n); v.IsKnown() && !v.IsNull() {
			if _, err := time.ParseDuration(v.AsString()); err != nil {
				d = d.Errorf([]string{n}, "not a duration: %v", err)
			}
		}
	}
	for _, n := range []string{"batch_size", "workers"} {
		if v, ok := ctyx.IntAttr(in, n, 0); ok && (v < 1 || v > 10000) {
			d = d.Errorf([]string{n}, "%s must be between 1 and 10000", n)
		}
	}
	return d
}

// replicateOptions are the decoded inputs.
type replicateOptions struct {
	src, dst        conn
	mode            string
	createTarget    bool
	batchSize       int
	workers         int
	checkpointEvery time.Duration
	verify          string
	pollEvery       time.Duration
	gzip            bool
}

func decodeReplicate(in cty.Value) (replicateOptions, error) {
	o := replicateOptions{src: connFrom(in, "source_"), dst: connFrom(in, "target_"),
		mode: ctyx.StringAttr(in, "mode"), createTarget: ctyx.BoolAttr(in, "create_target", true), verify: ctyx.StringAttr(in, "verify"),
		gzip: ctyx.BoolAttr(in, "gzip", false)}
	if o.mode == "" {
		o.mode = "plugin"
	}
	if o.verify == "" {
		o.verify = "full"
	}
	bs, _ := ctyx.IntAttr(in, "batch_size", 500)
	w, _ := ctyx.IntAttr(in, "workers", 4)
	o.batchSize, o.workers = int(bs), int(w)
	var err error
	o.checkpointEvery = 5 * time.Second
	if s := ctyx.StringAttr(in, "checkpoint_interval"); s != "" {
		if o.checkpointEvery, err = time.ParseDuration(s); err != nil {
			return o, sdk.Errorf(sdk.KindInvalid, false, `use a duration like "5s"`, "checkpoint_interval: %v", err)
		}
	}
	o.pollEvery = 2 * time.Second
	if s := ctyx.StringAttr(in, "poll_interval"); s != "" {
		if o.pollEvery, err = time.ParseDuration(s); err != nil {
			return o, sdk.Errorf(sdk.KindInvalid, false, `use a duration like "2s"`, "poll_interval: %v", err)
		}
	}
	return o, nil
}

// replicateState is both the engine checkpoint and the undo state.
type replicateState struct {
	V       int                     `json:"v"`
	Target  string                  `json:"target"`            // target host and path (Client.Name)
	Created []string                `json:"created,omitempty"` // databases this step created
	DBs     map[string]dbCheckpoint `json:"dbs,omitempty"`
}

type dbCheckpoint struct {
	Seq     json.RawMessage `json:"seq"`
	Session string          `json:"session"`
	// Revs and Docs count the revisions and documents written into the
	// database by every attempt up to this checkpoint.
	Revs int64 `json:"revs,omitempty"`
	Docs int64 `json:"docs,omitempty"`
	// Written lists, for a database that existed before the step, every
	// revision the step writes (id → revisions), journaled before it is
	// written: undo deletes them.
	Written map[string][]string `json:"written,omitempty"`
	// EndSeq is the target's update_seq once the step was done with a
	// database it created: undo deletes the database only if it is still
	// there.
	EndSeq json.RawMessage `json:"end_seq,omitempty"`
}

// replicateRun holds one Apply's shared state.
type replicateRun struct {
	ev sdk.Events
	// mu guards state, which checkpoints serialize as a whole.
	mu    sync.Mutex
	state replicateState
	// emitMu keeps journaled checkpoints in the order of their snapshots.
	emitMu sync.Mutex
}

func (r *replicateRun) snapshot() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.state)
	return b
}

func (r *replicateRun) emit() error {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	return r.ev.Checkpoint(r.snapshot())
}

// update changes one database's checkpoint under the lock.
func (r *replicateRun) update(db string, f func(*dbCheckpoint)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := r.state.DBs[db]
	f(&cp)
	r.state.DBs[db] = cp
}

type replicateTotals struct {
	Databases        []string `cty:"databases"`
	Created          []string `cty:"created"`
	ChangesRead      int64    `cty:"changes_read"`
	MissingFound     int64    `cty:"missing_found"`
	DocsRead         int64    `cty:"docs_read"`
	DocsWritten      int64    `cty:"docs_written"`
	DocumentsWritten int64    `cty:"documents_written"`
	RevisionsWritten int64    `cty:"revisions_written"`
	DocWriteFailures int64    `cty:"doc_write_failures"`
	Bytes            int64    `cty:"bytes"`
	Verified         bool     `cty:"verified"`
}

func (a replicateAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	o, err := decodeReplicate(req.Inputs)
	if err != nil {
		return nil, err
	}
	src, err := o.src.client()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := o.dst.client()
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	src.gzip, dst.gzip = o.gzip, o.gzip
	run := &replicateRun{ev: ev, state: replicateState{V: 1, Target: dst.Name(), DBs: map[string]dbCheckpoint{}}}
	if len(req.Checkpoint) > 0 {
		var prev replicateState
		if json.Unmarshal(req.Checkpoint, &prev) == nil && dst.Is(prev.Target) {
			run.state.Created = prev.Created
			for k, v := range prev.DBs {
				run.state.DBs[k] = v
			}
		}
	}
	totals := replicateTotals{Created: []string{}}
	result := func() *sdk.Result {
		run.mu.Lock()
		totals.Created = append([]string{}, run.state.Created...)
		totals.DocumentsWritten, totals.RevisionsWritten = 0, 0
		for _, db := range totals.Databases {
			totals.DocumentsWritten += run.state.DBs[db].Docs
			totals.RevisionsWritten += run.state.DBs[db].Revs
		}
		run.mu.Unlock()
		if totals.Databases == nil {
			totals.Databases = []string{}
		}
		out, _ := sdk.Encode(a.Schema(), totals)
		return &sdk.Result{Outputs: out, UndoState: run.snapshot()}
	}
	dbs, err := resolveDatabases(ctx, src, req.Inputs)
	if err != nil {
		return nil, err
	}
	totals.Databases = dbs
	if _, err := src.Info(ctx); err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name(), err)
	}
	if _, err := dst.Info(ctx); err != nil {
		return nil, fmt.Errorf("target %s: %w", dst.Name(), err)
	}
	verified := true
	for i, db := range dbs {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("replicating %s (%d/%d) from %s to %s", db, i+1, len(dbs), src.Name(), dst.Name()))
		if err := a.prepareTarget(ctx, run, src, dst, db, o.createTarget); err != nil {
			return result(), err
		}
		var st *stats
		if o.mode == "server" {
			st, err = replicateViaServer(ctx, ev, src, dst, db, o)
		} else {
			st, err = a.replicateOne(ctx, run, src, dst, db, o, req)
		}
		if st != nil {
			totals.ChangesRead += st.ChangesRead.Load()
			totals.MissingFound += st.MissingFound.Load()
			totals.DocsRead += st.DocsRead.Load()
			totals.DocsWritten += st.DocsWritten.Load()
			totals.DocWriteFailures += st.WriteFailures.Load()
			totals.Bytes += st.Bytes.Load()
		}
		if err != nil {
			return result(), fmt.Errorf("replicate %s: %w", db, err)
		}
		if n := st.WriteFailures.Load(); n > 0 {
			return result(), sdk.Errorf(sdk.KindQuota, false, "the target refused these documents (often their size: raise max_document_size / max_attachment_size / max_http_request_size on the target), then run the step again",
				"replicate %s: %d documents failed to write (see the log)", db, n)
		}
		if err := a.recordEnd(ctx, run, dst, db); err != nil {
			return result(), err
		}
		if o.verify == "none" {
			verified = false
			continue
		}
		rep, err := compareDB(ctx, src, dst, db, db, o.verify == "full", 0, o.workers)
		if err != nil {
			return result(), fmt.Errorf("verify %s: %w", db, err)
		}
		// Missing revisions fail the copy; with verify = "full" fewer live
		// documents on the target do not (a cleanup may have deleted copied
		// documents on purpose: their deletion descends from the copy).
		rep.IgnoreCounts = o.verify == "full"
		ev.Log(sdk.LevelInfo, rep.summary())
		if !rep.ok() {
			return result(), sdk.Errorf(sdk.KindConflict, true, "documents changed on the source during the copy, or the target refused some; run the step again (it resumes) and look at the target's logs",
				"verify %s: %s", db, rep.summary())
		}
	}
	totals.Verified = verified
	return result(), nil
}

// recordEnd keeps the update sequence of a database the step created, once
// it is done with it, so that undo can tell whether it was written to since.
func (replicateAction) recordEnd(ctx context.Context, run *replicateRun, dst *Client, db string) error {
	run.mu.Lock()
	created := slices.Contains(run.state.Created, db)
	run.mu.Unlock()
	if !created {
		return nil
	}
	info, err := dst.DBInfo(ctx, db)
	if err != nil {
		return fmt.Errorf("target database %s: %w", db, err)
	}
	run.update(db, func(c *dbCheckpoint) { c.EndSeq = info.UpdateSeq })
	return run.emit()
}

// prepareTarget makes sure the target database exists, creating it when
// allowed and recording that in the checkpoint before anything else.
func (replicateAction) prepareTarget(ctx context.Context, run *replicateRun, src, dst *Client, db string, create bool) error {
	if _, err := src.DBInfo(ctx, db); err != nil {
		return fmt.Errorf("source database %s: %w", db, err)
	}
	exists, err := dst.Exists(ctx, db)
	if err != nil {
		return fmt.Errorf("target database %s: %w", db, err)
	}
	if exists {
		return nil
	}
	if !create {
		return sdk.Errorf(sdk.KindNotFound, false, "create it on the target or set create_target = true", "target database %s does not exist", db)
	}
	created, err := dst.CreateDB(ctx, db)
	if err != nil {
		return fmt.Errorf("create target database %s: %w", db, err)
	}
	if created {
		run.mu.Lock()
		run.state.Created = append(run.state.Created, db)
		run.mu.Unlock()
		run.ev.Log(sdk.LevelInfo, "created target database "+db)
		if err := run.emit(); err != nil {
			return err
		}
	}
	return nil
}

func (replicateAction) replicateOne(ctx context.Context, run *replicateRun, src, dst *Client, db string, o replicateOptions, req *sdk.ApplyRequest) (*stats, error) {
	info, err := src.DBInfo(ctx, db)
	if err != nil {
		return nil, err
	}
	repID := replicationID(src.URL(), db, dst.URL(), db)
	srcDoc, err := readCheckpoint(ctx, src, db, repID)
	if err != nil && kindOf(err) != sdk.KindAuth {
		return nil, fmt.Errorf("read source checkpoint: %w", err)
	}
	dstDoc, err := readCheckpoint(ctx, dst, db, repID)
	if err != nil {
		return nil, fmt.Errorf("read target checkpoint: %w", err)
	}
	since := startSeq(srcDoc, dstDoc)
	run.mu.Lock()
	prev, hasPrev := run.state.DBs[db]
	run.mu.Unlock()
	if hasPrev && dstDoc.knowsSession(prev.Session) {
		// The engine's journal may be ahead of the _local documents (it is
		// written first); it is valid while the target keeps that session.
		since = prev.Seq
	}
	if len(since) > 0 && seqParam(since) != "0" {
		run.ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: resuming from checkpoint %s", db, seqParam(since)))
	}
	cp := &checkpointer{src: src, dst: dst, srcDB: db, dstDB: db, repID: repID, session: newSessionID(),
		start: time.Now(), startSeq: since, srcDoc: srcDoc, dstDoc: dstDoc}
	run.mu.Lock()
	created := slices.Contains(run.state.Created, db)
	run.mu.Unlock()
	sink := &recordingSink{sink: couchSink{c: dst, db: db}, run: run, db: db, record: !created}
	r := &replication{src: src, srcDB: db, dst: sink, since: since,
		batchSize: o.batchSize, workers: o.workers, checkpointEvery: o.checkpointEvery}
	if n, ok := seqNumber(info.UpdateSeq); ok {
		r.srcUpdateSeq = n
	}
	r.checkpoint = func(ctx context.Context, seq json.RawMessage) error {
		run.update(db, func(c *dbCheckpoint) {
			c.Seq, c.Session = seq, cp.session
			c.Revs, c.Docs = sink.totals(prev, c, &r.stats)
		})
		if err := run.emit(); err != nil {
			return fmt.Errorf("journal checkpoint: %w", err)
		}
		if err := cp.write(ctx, seq, &r.stats); err != nil {
			return fmt.Errorf("write checkpoint document: %w", err)
		}
		return nil
	}
	r.progress = func(done, pending int64) {
		run.ev.Progress(done, done+pending, "docs")
		run.ev.Progress(r.stats.Bytes.Load(), 0, "bytes")
	}
	_, err = r.run(ctx)
	st := &r.stats
	run.update(db, func(c *dbCheckpoint) { c.Revs, c.Docs = sink.totals(prev, c, st) })
	run.ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %d changes read, %d revisions missing, %d written, %d failed, %d bytes",
		db, st.ChangesRead.Load(), st.MissingFound.Load(), st.DocsWritten.Load(), st.WriteFailures.Load(), st.Bytes.Load()))
	if n := st.RevsVanished.Load(); n > 0 {
		run.ev.Log(sdk.LevelWarn, fmt.Sprintf("%s: %d revisions vanished from the source during the copy (compacted or purged)", db, n))
	}
	if s := r.failureSummary(); s != "" {
		run.ev.Log(sdk.LevelWarn, db+": refused by the target: "+s)
	}
	return st, asSDK(err)
}

var _ sdk.Planner = replicateAction{}

// Plan says which databases would be copied and created.
func (replicateAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "replicate databases (inputs known at apply time)"}, nil
	}
	o, err := decodeReplicate(req.Inputs)
	if err != nil {
		return nil, err
	}
	src, err := o.src.client()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := o.dst.client()
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	dbs, err := resolveDatabases(ctx, src, req.Inputs)
	if err != nil {
		return nil, err
	}
	res := &sdk.PlanResult{Counts: map[string]int64{}}
	for _, db := range dbs {
		info, err := src.DBInfo(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("source database %s: %w", db, err)
		}
		exists, err := dst.Exists(ctx, db)
		if err != nil {
			return nil, err
		}
		verb := "update"
		if !exists {
			verb = "create"
			if !o.createTarget {
				res.Warnings = append(res.Warnings, "target database "+db+" is missing and create_target is false")
			}
			res.Counts["create"]++
		}
		res.Counts["docs"] += info.DocCount
		res.Details = append(res.Details, fmt.Sprintf("%s %s: %d documents", verb, db, info.DocCount))
	}
	res.Summary = fmt.Sprintf("copy %d databases (%d documents) from %s to %s", len(dbs), res.Counts["docs"], src.Name(), dst.Name())
	return res, nil
}

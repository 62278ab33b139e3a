package couchdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/runbookdev/runbook/sdk"
)

// recordingSink counts the documents a replication writes and, for a
// database that existed before the step (record), journals every revision
// before writing it so that undo can delete exactly those.
type recordingSink struct {
	sink
	run    *replicateRun
	db     string
	record bool
	docs   atomic.Int64 // documents written by this attempt
}

func (s *recordingSink) Write(ctx context.Context, docs []fetchedDoc) ([]writeFailure, error) {
	if s.record {
		s.run.update(s.db, func(c *dbCheckpoint) {
			if c.Written == nil {
				c.Written = map[string][]string{}
			}
			for _, d := range docs {
				if !slices.Contains(c.Written[d.ID], d.Rev) {
					c.Written[d.ID] = append(c.Written[d.ID], d.Rev)
				}
			}
		})
		if err := s.run.emit(); err != nil {
			return nil, fmt.Errorf("journal the revisions to write: %w", err)
		}
	}
	failed, err := s.sink.Write(ctx, docs)
	if err != nil {
		return failed, err
	}
	bad := map[string]bool{}
	for _, f := range failed {
		bad[f.ID] = true
	}
	ids := map[string]bool{}
	for _, d := range docs {
		if !bad[d.ID] {
			ids[d.ID] = true
		}
	}
	s.docs.Add(int64(len(ids)))
	if s.record && len(bad) > 0 {
		// Refused revisions are not the step's to delete.
		s.run.update(s.db, func(c *dbCheckpoint) {
			for _, d := range docs {
				if bad[d.ID] {
					c.Written[d.ID] = slices.DeleteFunc(c.Written[d.ID], func(r string) bool { return r == d.Rev })
					if len(c.Written[d.ID]) == 0 {
						delete(c.Written, d.ID)
					}
				}
			}
		})
	}
	return failed, nil
}

// totals is what the step wrote into the database over every attempt:
// revisions and documents. For a database that existed they come from the
// journaled list; otherwise from the last checkpoint plus this attempt.
func (s *recordingSink) totals(prev dbCheckpoint, c *dbCheckpoint, st *stats) (revs, docs int64) {
	if s.record {
		for _, rs := range c.Written {
			revs += int64(len(rs))
		}
		return revs, int64(len(c.Written))
	}
	return prev.Revs + st.DocsWritten.Load(), prev.Docs + s.docs.Load()
}

var _ sdk.Undoer = replicateAction{}

// Undo deletes the target databases this step created and, in databases
// that existed, the revisions it wrote. It first checks that nothing was
// written since: a created database whose update sequence moved, or a
// written revision that is no longer a leaf, stops the undo with
// KindConflict naming them, unless req.Force.
func (replicateAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var st replicateState
	if len(req.UndoState) > 0 {
		if err := json.Unmarshal(req.UndoState, &st); err != nil {
			return sdk.Errorf(sdk.KindInternal, false, "", "read undo state: %v", err)
		}
	}
	var existing []string
	for db, cp := range st.DBs {
		if len(cp.Written) > 0 && !slices.Contains(st.Created, db) {
			existing = append(existing, db)
		}
	}
	sort.Strings(existing)
	if len(st.Created) == 0 && len(existing) == 0 {
		ev.Log(sdk.LevelInfo, "no target database was created and nothing was written; nothing to undo")
		return nil
	}
	dst, err := connFrom(req.Inputs, "target_").client()
	if err != nil {
		return err
	}
	defer dst.Close()
	if st.Target != "" && !dst.Is(st.Target) {
		return sdk.Errorf(sdk.KindConflict, false, "run the undo with the target URL the step used", "undo state is for %s, inputs name %s", Redact(st.Target), dst.Name())
	}
	var drift []string
	for _, db := range st.Created {
		end := st.DBs[db].EndSeq
		if len(end) == 0 {
			continue
		}
		info, err := dst.DBInfo(ctx, db)
		if kindOf(err) == sdk.KindNotFound {
			continue
		}
		if err != nil {
			return fmt.Errorf("target database %s: %w", db, err)
		}
		if a, _ := seqNumber(info.UpdateSeq); a != mustSeq(end) {
			drift = append(drift, fmt.Sprintf("database %s was written to after the step (update_seq %s, was %s)", db, seqParam(info.UpdateSeq), seqParam(end)))
		}
	}
	plans := map[string]*revUndo{}
	for _, db := range existing {
		p, err := planRevUndo(ctx, dst, db, st.DBs[db].Written)
		if err != nil {
			return err
		}
		plans[db] = p
		drift = append(drift, p.drift...)
	}
	if len(drift) > 0 {
		if !req.Force {
			return driftError("the target", drift)
		}
		ev.Log(sdk.LevelWarn, "forced: undoing over changes: "+strings.Join(drift, "; "))
	}
	var failed []string
	for _, db := range existing {
		p := plans[db]
		n, err := p.apply(ctx, dst, db)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", db, err))
			continue
		}
		msg := fmt.Sprintf("%s existed before the step: undid the %d revisions it wrote (%d documents, %d of them put back to the version they had before, the others deleted); the deletions stay in its history, so copying into it again will not bring those documents back (purge them, or copy into a fresh database)", db, n, p.docs, p.reverted)
		if len(p.left) > 0 {
			msg += fmt.Sprintf("; left %d written over since: %s", len(p.left), strings.Join(p.left, ", "))
		}
		ev.Log(sdk.LevelInfo, msg)
	}
	for _, db := range st.Created {
		ev.Log(sdk.LevelInfo, "deleting created target database "+db)
		if err := dst.DeleteDB(ctx, db); err != nil && kindOf(err) != sdk.KindNotFound {
			failed = append(failed, fmt.Sprintf("%s: %v", db, err))
		}
	}
	if len(failed) > 0 {
		return sdk.Errorf(sdk.KindUnreachable, true, "retry the rollback, or clean up by hand", "could not undo: %s", strings.Join(failed, "; "))
	}
	return nil
}

func mustSeq(seq json.RawMessage) int64 {
	n, _ := seqNumber(seq)
	return n
}

// revUndo is what undoing the revisions written into one existing database
// takes: the live leaves to delete, and what changed since.
type revUndo struct {
	del      []map[string]any // _bulk_docs writes: deletions, or previous versions back
	docs     int
	reverted int      // documents put back to the version they had before
	drift    []string // written over since, for the conflict
	left     []string // the same, "id@rev", left in place when forced
}

func planRevUndo(ctx context.Context, c *Client, db string, written map[string][]string) (*revUndo, error) {
	ids := make([]string, 0, len(written))
	for id := range written {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	p := &revUndo{}
	for _, id := range ids {
		ls, err := c.leaves(ctx, db, id, false)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", db, id, err)
		}
		touched := false
		for _, rev := range written[id] {
			i := slices.IndexFunc(ls, func(l leaf) bool { return l.Rev == rev })
			switch {
			case i >= 0 && !ls[i].Deleted:
				prev, err := previousVersion(ctx, c, db, id, rev, written[id])
				if err != nil {
					return nil, err
				}
				if prev != nil {
					// The copy extended a revision the target had: put that
					// version back instead of deleting the document.
					prev["_id"], prev["_rev"] = id, rev
					p.del = append(p.del, prev)
					p.reverted++
				} else {
					p.del = append(p.del, map[string]any{"_id": id, "_rev": rev, "_deleted": true})
				}
				touched = true
			case i >= 0:
				// A copied deletion: nothing to see.
			default:
				// Not a leaf: undone already (an earlier, interrupted undo),
				// written over since, or never stored.
				undone, err := undoneAlready(ctx, c, db, id, rev, ls, written[id])
				if err != nil {
					return nil, err
				}
				if undone {
					continue
				}
				_, err = c.GetDoc(ctx, db, id, map[string][]string{"rev": {rev}})
				if kindOf(err) == sdk.KindNotFound {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("read %s/%s@%s: %w", db, id, rev, err)
				}
				p.drift = append(p.drift, fmt.Sprintf("%s/%s: revision %s was written over", db, id, rev))
				p.left = append(p.left, id+"@"+rev)
			}
		}
		if touched {
			p.docs++
		}
	}
	return p, nil
}

// undoneAlready says whether the leaf on top of rev is what this undo
// writes: a deletion, or the target's previous version put back.
func undoneAlready(ctx context.Context, c *Client, db, id, rev string, ls []leaf, ours []string) (bool, error) {
	for _, l := range ls {
		if l.Parent != rev {
			continue
		}
		if l.Deleted {
			return true, nil
		}
		prev, err := previousVersion(ctx, c, db, id, rev, ours)
		if err != nil || prev == nil {
			return false, err
		}
		cur, err := c.GetDoc(ctx, db, id, url.Values{"rev": {l.Rev}, "attachments": {"true"}})
		if err != nil {
			return false, fmt.Errorf("read %s/%s@%s: %w", db, id, l.Rev, err)
		}
		return sameBody(cur, mustJSON(prev)), nil
	}
	return false, nil
}

// previousVersion is the body (attachments inline) of the nearest ancestor
// of rev that the target held before the step: a readable revision the
// step did not write. Ancestors that came with the copy are stubs without
// a body; nil when there is none (the document is new to the target, or
// the old body was compacted away).
func previousVersion(ctx context.Context, c *Client, db, id, rev string, ours []string) (map[string]any, error) {
	var doc struct {
		Revisions struct {
			Start int      `json:"start"`
			IDs   []string `json:"ids"`
		} `json:"_revisions"`
	}
	if err := c.JSON(ctx, Request{Method: "GET", Path: docPath(db, id), Query: url.Values{"rev": {rev}, "revs": {"true"}}}, &doc); err != nil {
		return nil, fmt.Errorf("read %s/%s@%s: %w", db, id, rev, err)
	}
	for i := 1; i < len(doc.Revisions.IDs); i++ {
		anc := fmt.Sprintf("%d-%s", doc.Revisions.Start-i, doc.Revisions.IDs[i])
		if slices.Contains(ours, anc) {
			continue
		}
		body, err := c.GetDoc(ctx, db, id, url.Values{"rev": {anc}, "attachments": {"true"}})
		if kindOf(err) == sdk.KindNotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/%s@%s: %w", db, id, anc, err)
		}
		if del, _ := body["_deleted"].(bool); del || len(body) == 0 {
			return nil, nil
		}
		delete(body, "_rev")
		delete(body, "_revisions")
		return body, nil
	}
	return nil, nil
}

func (p *revUndo) apply(ctx context.Context, c *Client, db string) (int, error) {
	n := 0
	for i := 0; i < len(p.del); i += 500 {
		part := p.del[i:min(i+500, len(p.del))]
		var res []struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: map[string]any{"docs": part}, NoRetry: true}, &res); err != nil {
			return n, err
		}
		for _, r := range res {
			if r.Error == "" {
				n++
			} else {
				p.left = append(p.left, r.ID+" ("+r.Error+")")
			}
		}
	}
	return n, nil
}

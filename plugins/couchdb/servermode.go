package couchdb

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/sdk"
)

// replicateViaServer runs one database's replication with a _replicator
// document on the target server and follows it through
// /_scheduler/docs/_replicator/<id> (CouchDB 2+). Servers without
// _scheduler (CouchDB 1.x, pouchdb-server) are followed through the
// document's _replication_state field instead. The document is deleted
// when the replication ends or when ctx is cancelled, which cancels it.
func replicateViaServer(ctx context.Context, ev sdk.Events, src, dst *Client, db string, o replicateOptions) (*stats, error) {
	info, err := dst.Info(ctx)
	if err != nil {
		return nil, err
	}
	id := "runbook-" + replicationID(src.URL(), db, dst.URL(), db)
	endpoint := func(c *Client) any {
		u := c.URL() + dbPath(db)
		if c.username == "" && c.password == "" {
			return u
		}
		if info.IsPouchDB() {
			// pouchdb-server's replicator reads credentials from the URL
			// only. The document lives in the target's _replicator
			// database, readable by admins only.
			pu, _ := url.Parse(u)
			pu.User = url.UserPassword(c.username, c.password)
			return pu.String()
		}
		return map[string]any{"url": u, "auth": map[string]any{"basic": map[string]string{"username": c.username, "password": c.password}}}
	}
	doc := map[string]any{
		"_id": id, "source": endpoint(src), "target": endpoint(dst),
		"create_target": o.createTarget, "continuous": false,
	}
	if _, err := dst.CreateDB(ctx, "_replicator"); err != nil && kindOf(err) != sdk.KindConflict {
		return nil, fmt.Errorf("prepare _replicator: %w", err)
	}
	// A finished document from an earlier run is replaced.
	if old, err := dst.GetDoc(ctx, "_replicator", id, nil); err == nil {
		if rev, _ := old["_rev"].(string); rev != "" {
			_ = dst.JSON(ctx, Request{Method: "DELETE", Path: docPath("_replicator", id), Query: url.Values{"rev": {rev}}}, nil)
		}
	}
	if _, err := dst.PutDoc(ctx, "_replicator", id, doc); err != nil {
		return nil, fmt.Errorf("create _replicator document %s: %w", id, err)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: _replicator/%s created on %s", db, id, dst.Name()))
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// The server updates the document as the replication runs: retry
		// on a conflict with the newer revision.
		wait := backoff.Policy{Base: 100 * time.Millisecond, Fixed: true}
		for i := 1; i <= 10; i++ {
			cur, err := dst.GetDoc(cctx, "_replicator", id, nil)
			if err != nil {
				return
			}
			rev, _ := cur["_rev"].(string)
			err = dst.JSON(cctx, Request{Method: "DELETE", Path: docPath("_replicator", id), Query: url.Values{"rev": {rev}}}, nil)
			if statusOf(err) != 409 {
				return
			}
			if wait.Wait(cctx, i) != nil {
				return
			}
		}
	}
	defer cleanup()

	st := &stats{}
	noScheduler := false
	tick := time.NewTicker(o.pollEvery)
	defer tick.Stop()
	for {
		var state, reason string
		readDoc := func() error {
			var d struct {
				State  string `json:"_replication_state"`
				Reason string `json:"_replication_state_reason"`
				Stats  struct {
					DocsWritten      int64 `json:"docs_written"`
					DocWriteFailures int64 `json:"doc_write_failures"`
					DocsRead         int64 `json:"docs_read"`
				} `json:"_replication_stats"`
			}
			if err := dst.JSON(ctx, Request{Method: "GET", Path: docPath("_replicator", id)}, &d); err != nil {
				return err
			}
			state, reason = d.State, d.Reason
			st.DocsWritten.Store(d.Stats.DocsWritten)
			st.WriteFailures.Store(d.Stats.DocWriteFailures)
			st.DocsRead.Store(d.Stats.DocsRead)
			return nil
		}
		if noScheduler {
			if err := readDoc(); err != nil {
				return st, err
			}
		} else {
			var sd struct {
				State string `json:"state"`
				Info  struct {
					DocsWritten      int64  `json:"docs_written"`
					DocWriteFailures int64  `json:"doc_write_failures"`
					DocsRead         int64  `json:"docs_read"`
					MissingFound     int64  `json:"missing_revisions_found"`
					RevsChecked      int64  `json:"revisions_checked"`
					ChangesPending   *int64 `json:"changes_pending"`
					Error            string `json:"error"`
				} `json:"info"`
			}
			err := dst.JSON(ctx, Request{Method: "GET", Path: "/_scheduler/docs/_replicator/" + url.PathEscape(id)}, &sd)
			switch {
			case err == nil:
				state, reason = sd.State, sd.Info.Error
				st.DocsWritten.Store(sd.Info.DocsWritten)
				st.WriteFailures.Store(sd.Info.DocWriteFailures)
				st.DocsRead.Store(sd.Info.DocsRead)
				st.MissingFound.Store(sd.Info.MissingFound)
				st.ChangesRead.Store(sd.Info.RevsChecked)
				if sd.Info.ChangesPending != nil {
					ev.Progress(sd.Info.DocsWritten, sd.Info.DocsWritten+*sd.Info.ChangesPending, "docs")
				}
			case statusOf(err) == 404 || statusOf(err) == 400:
				// Either the server has no scheduler (CouchDB 1.x,
				// pouchdb-server) or the document is not scheduled yet.
				if serr := dst.JSON(ctx, Request{Method: "GET", Path: "/_scheduler/jobs"}, nil); statusOf(serr) == 404 || statusOf(serr) == 400 {
					noScheduler = true
					ev.Log(sdk.LevelInfo, "the target has no _scheduler; following the _replicator document's _replication_state")
				}
				if err := readDoc(); err != nil {
					return st, err
				}
			default:
				return st, err
			}
		}
		// The server's reason may quote the endpoints, credentials included.
		reason = hideSecrets(reason, src.password, dst.password)
		switch state {
		case "completed":
			ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: server replication completed, %d docs written", db, st.DocsWritten.Load()))
			return st, nil
		case "failed", "error":
			return st, sdk.Errorf(sdk.KindConflict, true, "look at the target server's log and _scheduler/jobs; check that the target can reach the source URL",
				"server replication of %s ended in state %s: %s", db, state, reason)
		case "crashing":
			ev.Log(sdk.LevelWarn, fmt.Sprintf("%s: server replication is crashing (%s); the server retries", db, reason))
		}
		select {
		case <-ctx.Done():
			ev.Log(sdk.LevelWarn, db+": interrupted, cancelling the server replication")
			return st, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
		case <-tick.C:
		}
	}
}

// hideSecrets replaces the given secrets in s.
func hideSecrets(s string, secrets ...string) string {
	for _, x := range secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "***")
		}
	}
	return s
}

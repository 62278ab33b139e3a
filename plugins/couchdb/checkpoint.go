package couchdb

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// checkpointDoc is the _local document CouchDB's replicator keeps on both
// the source and the target; the same shape lets operators read it with the
// usual tools.
type checkpointDoc struct {
	ID                   string          `json:"_id"`
	Rev                  string          `json:"_rev,omitempty"`
	SessionID            string          `json:"session_id"`
	SourceLastSeq        json.RawMessage `json:"source_last_seq"`
	ReplicationIDVersion int             `json:"replication_id_version"`
	Replicator           string          `json:"replicator"`
	History              []historyEntry  `json:"history"`
}

type historyEntry struct {
	SessionID        string          `json:"session_id"`
	StartTime        string          `json:"start_time"`
	EndTime          string          `json:"end_time"`
	StartLastSeq     json.RawMessage `json:"start_last_seq"`
	EndLastSeq       json.RawMessage `json:"end_last_seq"`
	RecordedSeq      json.RawMessage `json:"recorded_seq"`
	MissingChecked   int64           `json:"missing_checked"`
	MissingFound     int64           `json:"missing_found"`
	DocsRead         int64           `json:"docs_read"`
	DocsWritten      int64           `json:"docs_written"`
	DocWriteFailures int64           `json:"doc_write_failures"`
}

// maxHistory is how many sessions a checkpoint document remembers.
const maxHistory = 50

// replicationID names a replication from its endpoints (without
// credentials), so that a rerun with the same endpoints finds its
// checkpoints.
func replicationID(srcURL, srcDB, dstURL, dstDB string) string {
	sum := md5.Sum([]byte("runbook-couchdb/1\n" + srcURL + "\n" + srcDB + "\n" + dstURL + "\n" + dstDB))
	return hex.EncodeToString(sum[:])
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readCheckpoint reads _local/<repid> (nil when absent).
func readCheckpoint(ctx context.Context, c *Client, db, repID string) (*checkpointDoc, error) {
	var d checkpointDoc
	err := c.JSON(ctx, Request{Method: "GET", Path: docPath(db, "_local/"+repID)}, &d)
	if statusOf(err) == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// startSeq applies CouchDB's rule: the source's last seq when both sides
// ended the same session, else the newest session both remember, else 0.
func startSeq(src, dst *checkpointDoc) json.RawMessage {
	if src == nil || dst == nil {
		return nil
	}
	if src.SessionID != "" && src.SessionID == dst.SessionID {
		return src.SourceLastSeq
	}
	for _, h := range src.History {
		for _, g := range dst.History {
			if h.SessionID == g.SessionID {
				return h.RecordedSeq
			}
		}
	}
	return nil
}

// knowsSession tells whether a checkpoint document recorded session.
func (d *checkpointDoc) knowsSession(session string) bool {
	if d == nil || session == "" {
		return false
	}
	if d.SessionID == session {
		return true
	}
	for _, h := range d.History {
		if h.SessionID == session {
			return true
		}
	}
	return false
}

// checkpointer writes a replication's checkpoint documents on both sides.
// It is used from one goroutine at a time.
type checkpointer struct {
	src, dst     *Client
	srcDB, dstDB string
	repID        string
	session      string
	start        time.Time
	startSeq     json.RawMessage
	srcDoc       *checkpointDoc
	dstDoc       *checkpointDoc
	// srcReadOnly is set when the source refused the write (a read-only
	// user); the target's document still allows resuming from it alone
	// through the engine's checkpoint.
	srcReadOnly bool
}

func (cp *checkpointer) write(ctx context.Context, seq json.RawMessage, st *stats) error {
	entry := historyEntry{
		SessionID: cp.session, StartTime: cp.start.UTC().Format(time.RFC1123), EndTime: time.Now().UTC().Format(time.RFC1123),
		StartLastSeq: orZero(cp.startSeq), EndLastSeq: seq, RecordedSeq: seq,
		MissingChecked: st.ChangesRead.Load(), MissingFound: st.MissingFound.Load(),
		DocsRead: st.DocsRead.Load(), DocsWritten: st.DocsWritten.Load(), DocWriteFailures: st.WriteFailures.Load(),
	}
	var err error
	if cp.dstDoc, err = cp.put(ctx, cp.dst, cp.dstDB, cp.dstDoc, seq, entry); err != nil {
		return err
	}
	if cp.src != nil && !cp.srcReadOnly {
		doc, err := cp.put(ctx, cp.src, cp.srcDB, cp.srcDoc, seq, entry)
		if err != nil {
			if k := statusOf(err); k == 401 || k == 403 {
				cp.srcReadOnly = true
				return nil
			}
			return err
		}
		cp.srcDoc = doc
	}
	return nil
}

func (cp *checkpointer) put(ctx context.Context, c *Client, db string, prev *checkpointDoc, seq json.RawMessage, entry historyEntry) (*checkpointDoc, error) {
	d := &checkpointDoc{ID: "_local/" + cp.repID, SessionID: cp.session, SourceLastSeq: seq, ReplicationIDVersion: 4, Replicator: "runbook"}
	var hist []historyEntry
	if prev != nil {
		d.Rev = prev.Rev
		for _, h := range prev.History {
			if h.SessionID != cp.session {
				hist = append(hist, h)
			}
		}
	}
	d.History = append([]historyEntry{entry}, hist...)
	if len(d.History) > maxHistory {
		d.History = d.History[:maxHistory]
	}
	rev, err := putRetrying(ctx, c, db, d)
	if statusOf(err) == 409 {
		// Someone else wrote it (another replication with the same
		// endpoints): take the current revision and write over it.
		cur, rerr := readCheckpoint(ctx, c, db, cp.repID)
		if rerr != nil {
			return prev, rerr
		}
		if cur != nil {
			d.Rev = cur.Rev
		}
		rev, err = putRetrying(ctx, c, db, d)
	}
	if err != nil {
		return prev, err
	}
	d.Rev = rev
	return d, nil
}

func orZero(seq json.RawMessage) json.RawMessage {
	if len(seq) == 0 {
		return json.RawMessage("0")
	}
	return seq
}

// putRetrying writes a checkpoint document, retrying on connection errors
// and 5xx like any idempotent request (a lost answer shows as a 409 on the
// retry, which the caller handles).
func putRetrying(ctx context.Context, c *Client, db string, d *checkpointDoc) (string, error) {
	var out struct {
		Rev string `json:"rev"`
	}
	err := c.JSON(ctx, Request{Method: "PUT", Path: docPath(db, d.ID), Body: d}, &out)
	return out.Rev, err
}

package couchdb

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// Dump file format: gzip-compressed JSON lines. The first line is a
// dumpHeader; each following line is one document revision with its
// _revisions history and its attachments inline (base64), exactly what
// _bulk_docs?new_edits=false takes back.
const dumpFormat = "runbook-couchdb-dump"

type dumpHeader struct {
	Format    string          `json:"format"`
	Version   int             `json:"version"`
	Database  string          `json:"database"`
	Server    string          `json:"server"`
	DocCount  int64           `json:"doc_count"`
	UpdateSeq json.RawMessage `json:"update_seq"`
	Security  json.RawMessage `json:"security,omitempty"`
	// Local holds the _local documents by id (without "_local/").
	Local map[string]json.RawMessage `json:"local,omitempty"`
}

// dumpAction is couchdb.dump.
type dumpAction struct{}

var (
	_ sdk.Action    = dumpAction{}
	_ sdk.Validator = dumpAction{}
)

func (dumpAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""),
		sdk.Attribute{Name: "database", Type: cty.String, Required: true},
		sdk.Attribute{Name: "path", Type: cty.String, Required: true, Description: "File to write (gzip JSON lines); written aside and renamed when complete."},
		sdk.Attribute{Name: "overwrite", Type: cty.Bool, Description: "Replace an existing file (default false)."},
		sdk.Attribute{Name: "workers", Type: cty.Number, Description: "Batches read at once (default 4)."},
		sdk.Attribute{Name: "local_ids", Type: cty.List(cty.String),
			Description: `_local documents to save besides those the server lists (ids with or without "_local/"). CouchDB 2.2 and later list them all; CouchDB 1.x and pouchdb-server cannot, so only these are saved there.`},
	)
	return sdk.ActionSchema{
		Name:        "dump",
		Description: "Save a database (every revision leaf with its history and attachments, its _security and _local documents) to a gzip file.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "path", Type: cty.String},
			{Name: "docs", Type: cty.Number, Description: "Revisions written."},
			{Name: "local_docs", Type: cty.Number, Description: "_local documents saved."},
			{Name: "bytes", Type: cty.Number, Description: "Size of the file."},
			{Name: "sha256", Type: cty.String},
		},
		// Read-only towards the server; the file is new (or replaced only
		// with overwrite = true), so it needs no undo and is no point of
		// no return.
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (dumpAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateURL(in, "url")
}

// dumpFile is the file a dump is written to, aside from its final path.
type dumpFile interface {
	io.Writer
	Sync() error
	Close() error
}

// createDumpFile creates the file a dump is written to (tests swap it for
// one that fails).
var createDumpFile = func(name string) (dumpFile, error) {
	return os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
}

// finishDump pushes the buffered and compressed tail of a dump down to the
// disk and closes the file. Every layer's error counts (the first wins): a
// dump cut short by a full disk must never be renamed into place.
func finishDump(bw *bufio.Writer, zw *gzip.Writer, f dumpFile) error {
	err := bw.Flush()
	if zerr := zw.Close(); err == nil {
		err = zerr
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileSink writes revisions as JSON lines; it wants every revision.
type fileSink struct {
	mu sync.Mutex // guards w and n
	w  *bufio.Writer
	n  int64
}

func (s *fileSink) Missing(_ context.Context, revs map[string][]string) (map[string][]string, error) {
	return revs, nil
}

func (s *fileSink) Write(_ context.Context, docs []fetchedDoc) ([]writeFailure, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range docs {
		if _, err := s.w.Write(d.Raw); err != nil {
			return nil, err
		}
		if err := s.w.WriteByte('\n'); err != nil {
			return nil, err
		}
		s.n++
	}
	return nil, nil
}

func (a dumpAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	db, path := ctyx.StringAttr(req.Inputs, "database"), ctyx.StringAttr(req.Inputs, "path")
	if _, err := os.Stat(path); err == nil && !ctyx.BoolAttr(req.Inputs, "overwrite", false) {
		return nil, sdk.Errorf(sdk.KindConflict, false, "choose another path or set overwrite = true", "%s already exists", path)
	}
	info, err := c.DBInfo(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", db, err)
	}
	sec, err := getSecurity(ctx, c, db)
	if err != nil {
		ev.Log(sdk.LevelWarn, fmt.Sprintf("%s: _security not saved: %v", db, err))
		sec = nil
	}
	local, listed, err := readLocalDocs(ctx, c, db, listAttr(req.Inputs, "local_ids"))
	if err != nil {
		return nil, err
	}
	if !listed {
		ev.Log(sdk.LevelWarn, fmt.Sprintf("%s cannot list the _local documents of %s: saved only the %d named in local_ids that exist", c.Name(), db, len(local)))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the path", "create directory: %v", err)
	}
	tmp := path + ".partial"
	f, err := createDumpFile(tmp)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the path and its permissions", "create %s: %v", tmp, err)
	}
	defer func() { _ = os.Remove(tmp) }()
	h := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(f, h))
	bw := bufio.NewWriterSize(zw, 1<<20)
	hdr, _ := json.Marshal(dumpHeader{Format: dumpFormat, Version: 1, Database: db, Server: c.URL(),
		DocCount: info.DocCount, UpdateSeq: info.UpdateSeq, Security: sec, Local: local})
	bw.Write(hdr)
	bw.WriteByte('\n')
	sink := &fileSink{w: bw}
	workers, _ := ctyx.IntAttr(req.Inputs, "workers", 4)
	r := &replication{src: c, srcDB: db, dst: sink, batchSize: 500, workers: int(workers)}
	if n, ok := seqNumber(info.UpdateSeq); ok {
		r.srcUpdateSeq = n
	}
	r.progress = func(done, pending int64) { ev.Progress(done, done+pending, "docs") }
	if _, err := r.run(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("dump %s: %w", db, asSDK(err))
	}
	if err := finishDump(bw, zw, f); err != nil {
		return nil, sdk.Errorf(sdk.KindQuota, false, "check free space where the dump is written", "write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the path", "rename %s: %v", tmp, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the path", "dump written, then: %v", err)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("dumped %d revisions and %d _local documents of %s to %s (%d bytes)", sink.n, len(local), db, path, st.Size()))
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"path": cty.StringVal(path), "docs": cty.NumberIntVal(sink.n), "bytes": cty.NumberIntVal(st.Size()),
		"local_docs": cty.NumberIntVal(int64(len(local))),
		"sha256":     cty.StringVal(hex.EncodeToString(h.Sum(nil))),
	})}, nil
}

package nextcloud

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// inventoryAction is nextcloud.inventory.
type inventoryAction struct{}

var (
	_ sdk.Action    = inventoryAction{}
	_ sdk.Validator = inventoryAction{}
)

// defaultConcurrency is how many requests a walk or a copy has in flight.
const defaultConcurrency = 8

func (inventoryAction) Schema() sdk.ActionSchema {
	in := connAttrs("", "", true)
	in = append(in,
		sdk.Attribute{Name: "path", Type: cty.String, Description: "Folder to take, relative to the user's files (default: all of them)."},
		sdk.Attribute{Name: "manifest", Type: cty.String, Required: true, Description: "File to write the manifest to: one JSON object per line (path, dir, size, etag, fileid, mtime, checksums). Replaced atomically."},
		sdk.Attribute{Name: "concurrency", Type: cty.Number, Description: "PROPFIND requests in flight at once (default 8)."},
	)
	return sdk.ActionSchema{
		Name: "inventory",
		Description: "Walk a user's files with Depth 1 PROPFINDs (never Depth infinity), several folders at once, and count files, folders and bytes. " +
			"The manifest goes to a file as it is read, so memory stays flat whatever the size of the tree.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "user_id", Type: cty.String, Description: "The DAV user id the walk used."},
			{Name: "files", Type: cty.Number, Description: "Number of files."},
			{Name: "folders", Type: cty.Number, Description: "Number of folders below the walked one."},
			{Name: "bytes", Type: cty.Number, Description: "Total size of the files."},
			{Name: "with_checksums", Type: cty.Number, Description: "Files for which the server has a checksum (oc:checksums)."},
			{Name: "manifest", Type: cty.String, Description: "Path of the manifest file."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (inventoryAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateConn(in, "")
}

// manifestLine is one line of a manifest.
type manifestLine struct {
	Path      string `json:"path"`
	Dir       bool   `json:"dir,omitempty"`
	Size      int64  `json:"size"`
	ETag      string `json:"etag,omitempty"`
	FileID    string `json:"fileid,omitempty"`
	MTime     string `json:"mtime,omitempty"`
	Checksums string `json:"checksums,omitempty"`
}

func lineOf(e entry) manifestLine {
	l := manifestLine{Path: e.Path, Dir: e.Dir, Size: e.Size, ETag: e.ETag, FileID: e.FileID, Checksums: e.Checksums}
	if !e.MTime.IsZero() {
		l.MTime = e.MTime.UTC().Format(time.RFC3339)
	}
	return l
}

func (a inventoryAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	c, root, err := connFrom(in, "").davRoot(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dest := ctyx.StringAttr(in, "manifest")
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "choose a writable manifest path", "manifest: %v", err)
	}
	f, err := os.CreateTemp(filepath.Dir(dest), ".manifest-*")
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "choose a writable manifest path", "manifest: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(bw)
	var (
		mu                     sync.Mutex
		files, folders, nbytes atomic.Int64
		sums                   atomic.Int64
		lastProgress           time.Time
	)
	top := joinPath(root, ctyx.StringAttr(in, "path"))
	err = c.walk(ctx, top, intAttr(in, "concurrency", defaultConcurrency), func(e entry) error {
		if e.Dir {
			folders.Add(1)
		} else {
			files.Add(1)
			nbytes.Add(e.Size)
			if e.Checksums != "" {
				sums.Add(1)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(lastProgress) > time.Second {
			lastProgress = time.Now()
			ev.Progress(files.Load(), 0, "files")
		}
		return enc.Encode(lineOf(e))
	})
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", top, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(f.Name(), dest); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	ev.Progress(files.Load(), files.Load(), "files")
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %d files, %d folders, %d bytes", top, files.Load(), folders.Load(), nbytes.Load()))
	out := struct {
		UserID  string `cty:"user_id"`
		Files   int64  `cty:"files"`
		Folders int64  `cty:"folders"`
		Bytes   int64  `cty:"bytes"`
		Sums    int64  `cty:"with_checksums"`
		Path    string `cty:"manifest"`
	}{filepathBase(root), files.Load(), folders.Load(), nbytes.Load(), sums.Load(), dest}
	v, err := sdk.Encode(a.Schema(), out)
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Outputs: v}, nil
}

// filepathBase is the last segment of a DAV path (the user id of a files root).
func filepathBase(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

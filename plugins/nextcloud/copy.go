package nextcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// copyAction is nextcloud.copy.
type copyAction struct{}

var (
	_ sdk.Action    = copyAction{}
	_ sdk.Undoer    = copyAction{}
	_ sdk.Validator = copyAction{}
)

// maxListed caps skipped[], errors[] and changed[] in the outputs; the
// counts stay exact.
const maxListed = 1000

var (
	skippedType = cty.Object(map[string]cty.Type{"path": cty.String, "reason": cty.String, "size": cty.Number})
	errorType   = cty.Object(map[string]cty.Type{"path": cty.String, "message": cty.String})
)

func (copyAction) Schema() sdk.ActionSchema {
	in := connAttrs("", "source", true)
	in = append(in,
		sdk.Attribute{Name: "path", Type: cty.String, Description: "Folder to copy, relative to the source user's files (default: all of them)."},
		sdk.Attribute{Name: "target_dir", Type: cty.String, Description: "Local directory to copy into (created if missing). Set this or target_url."},
	)
	in = append(in, connAttrs("target_", "target", false)...)
	in = append(in,
		sdk.Attribute{Name: "target_token", Type: cty.String, Sensitive: true, Description: "Bearer token of the Cozy instance (target_vendor \"cozy\"), allowed to write io.cozy.files; never printed."},
		sdk.Attribute{Name: "target_path", Type: cty.String, Description: "Folder inside the target user's files to copy into (created with its parents); for Cozy a path such as /Nextcloud."},
		sdk.Attribute{Name: "target_vendor", Type: cty.String, Description: `"webdav" (default), "nextcloud" or "cozy". Nextcloud targets get chunked upload v2 for big files and X-OC-Mtime; plain WebDAV targets get X-OC-Mtime too (rclone serve webdav 1.76 keeps it without saying so, which the copy checks on the first file; Apache mod_dav and rclone 1.60 cannot keep mtimes). ` +
			`"cozy" writes through the Cozy files API (POST /files/:dir-id with Content-MD5, mtimes in CreatedAt/UpdatedAt, target_token as bearer token; a name taken (409) is skipped).`},
		sdk.Attribute{Name: "chunk_size", Type: cty.Number, Description: "Files above this many bytes go to a Nextcloud target in chunks of this size (default 10 MiB)."},
		sdk.Attribute{Name: "concurrency", Type: cty.Number, Description: "Files copied at once (default 8)."},
		sdk.Attribute{Name: "parallel_threshold", Type: cty.Number, Description: "Files from this many bytes are read in 4 ranges at once when copying to a local directory (default 64 MiB; 0 turns it off). The SHA1 is still computed in order as the data arrives."},
		sdk.Attribute{Name: "state_dir", Type: cty.String, Description: "Where the copy keeps its ledger of created files, for resume and undo (default: $RUNBOOK_STATE_DIR/nextcloud)."},
		sdk.Attribute{Name: "fail_on_errors", Type: cty.Bool, Description: "Fail the step when a file could not be copied (default true); the outputs list them either way."},
	)
	return sdk.ActionSchema{
		Name: "copy",
		Description: "Copy a user's tree, or a folder of it, to a local directory, another WebDAV server (Nextcloud included) or a Cozy instance (files API), keeping mtimes and verifying every file (size, and the SHA1 computed while streaming against the server's checksum when it has one). " +
			"Resumes from its ledger without sending finished files again, also after a dropped connection in the middle of a file; files that exist at the target are skipped with a reason; 423, 429 and 503 are retried honouring Retry-After; 507 stops the copy. " +
			"Undo deletes only what the copy created and is unchanged since (on Cozy: to the trash, with If-Match on the revision). " +
			"A copy killed between an upload and its ledger line leaves an intent that the next attempt and the undo settle by looking at the target: the source's content is recorded (and undone), anything else is left and reported.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "files", Type: cty.Number, Description: "Files at the target that this step copied (including those of earlier attempts)."},
			{Name: "bytes", Type: cty.Number, Description: "Their total size."},
			{Name: "folders_created", Type: cty.Number, Description: "Folders the step created."},
			{Name: "resumed", Type: cty.Number, Description: "Files an earlier attempt had copied, not sent again."},
			{Name: "verified_with_server_checksum", Type: cty.Number, Description: "Files whose checksum matched the source server's."},
			{Name: "skipped", Type: cty.List(skippedType), Description: "Files left alone, with the reason (at most 1000; never null)."},
			{Name: "skipped_count", Type: cty.Number},
			{Name: "errors", Type: cty.List(errorType), Description: "Files that could not be copied (at most 1000; never null)."},
			{Name: "error_count", Type: cty.Number},
			{Name: "mtimes_not_kept", Type: cty.Number, Description: "Files whose mtime a WebDAV target did not keep: no \"X-OC-Mtime: accepted\" in its reply, and the first such file read back with another mtime (Apache mod_dav gives files the upload time). Nextcloud keeps mtimes; so do local directories and Cozy."},
			{Name: "changed", Type: cty.List(cty.String), Description: "Files that changed at the source between the listing and the copy; the version read is the one copied."},
			{Name: "ledger", Type: cty.String, Description: "The ledger file of what was created."},
			{Name: "target", Type: cty.String, Description: "Where the files went."},
		},
		MaxConcurrency: 4,
	}
}

func (copyAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateConn(in, "")
	d = append(d, validateConn(in, "target_")...)
	dir, url := ctyx.Attr(in, "target_dir"), ctyx.Attr(in, "target_url")
	if dir.IsKnown() && url.IsKnown() {
		if dir.IsNull() == url.IsNull() {
			d = d.Errorf([]string{"target_dir"}, "set exactly one of target_dir and target_url")
		}
	}
	if v := ctyx.Attr(in, "target_vendor"); !v.IsNull() && v.IsKnown() {
		switch s := v.AsString(); s {
		case "webdav", "nextcloud":
		case "cozy":
			if t := ctyx.Attr(in, "target_token"); t.IsKnown() && t.IsNull() {
				d = d.Errorf([]string{"target_token"}, "a Cozy target needs target_token")
			}
		default:
			d = d.Errorf([]string{"target_vendor"}, `must be "webdav", "nextcloud" or "cozy"`)
		}
	}
	return d
}

type skipped struct {
	Path   string `cty:"path"`
	Reason string `cty:"reason"`
	Size   int64  `cty:"size"`
}

type fileError struct {
	Path    string `cty:"path"`
	Message string `cty:"message"`
}

type copyOutputs struct {
	Files      int64       `cty:"files"`
	Bytes      int64       `cty:"bytes"`
	Folders    int64       `cty:"folders_created"`
	Resumed    int64       `cty:"resumed"`
	Verified   int64       `cty:"verified_with_server_checksum"`
	Skipped    []skipped   `cty:"skipped"`
	NSkipped   int64       `cty:"skipped_count"`
	Errors     []fileError `cty:"errors"`
	NErrors    int64       `cty:"error_count"`
	MTimeLost  int64       `cty:"mtimes_not_kept"`
	Changed    []string    `cty:"changed"`
	Ledger     string      `cty:"ledger"`
	TargetDesc string      `cty:"target"`
}

// mtimeReporter is a target that may not keep mtimes.
type mtimeReporter interface{ mtimesLost() int64 }

// copyState is the checkpoint and the undo state: where the ledger is.
type copyState struct {
	Ledger string `json:"ledger"`
	Files  int64  `json:"files,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
}

// openTarget builds the copy's target from the inputs.
func openTarget(ctx context.Context, in cty.Value) (target, error) {
	if d := ctyx.StringAttr(in, "target_dir"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "", "target_dir: %v", err)
		}
		return &localTarget{dir: abs, rangedMin: int64(intAttr(in, "parallel_threshold", defaultRangedThreshold))}, nil
	}
	tc := connFrom(in, "target_")
	if tc.URL == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set target_dir or target_url", "no target")
	}
	if ctyx.StringAttr(in, "target_vendor") == "cozy" {
		return newCozyTarget(tc.URL, ctyx.StringAttr(in, "target_token"), ctyx.StringAttr(in, "target_path"), filepath.Join(stateDir(in), "spool"))
	}
	c, root, err := tc.davRoot(ctx)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return &davTarget{c: c, root: joinPath(root, ctyx.StringAttr(in, "target_path")), user: filepathBase(root),
		nextcloud: ctyx.StringAttr(in, "target_vendor") == "nextcloud", chunkSize: int64(intAttr(in, "chunk_size", 10<<20))}, nil
}

// stateDir is where ledgers live.
func stateDir(in cty.Value) string {
	if d := ctyx.StringAttr(in, "state_dir"); d != "" {
		return d
	}
	if d := os.Getenv("RUNBOOK_STATE_DIR"); d != "" {
		return filepath.Join(d, "nextcloud")
	}
	return filepath.Join(os.TempDir(), "runbook-nextcloud")
}

// copyRun is one Apply of nextcloud.copy.
type copyRun struct {
	src     *Client
	srcRoot string
	tgt     target
	led     *ledger
	done    map[string]bool // files an earlier attempt copied (read-only)
	// fresh holds the folders the copy created (this attempt or an
	// earlier one): nothing was at their files' paths.
	fresh  sync.Map
	ev     sdk.Events
	cancel context.CancelFunc

	files, bytes, folders, resumed, verified atomic.Int64
	seenFiles, seenBytes                     atomic.Int64
	resumedBytes                             int64 // set before the walk

	mu       sync.Mutex // guards the lists and fatal
	out      copyOutputs
	fatalErr error
}

func (r *copyRun) fatal(err error) {
	r.mu.Lock()
	if r.fatalErr == nil {
		r.fatalErr = err
	}
	r.mu.Unlock()
	r.cancel()
}

func (r *copyRun) skip(p, reason string, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.NSkipped++
	if len(r.out.Skipped) < maxListed {
		r.out.Skipped = append(r.out.Skipped, skipped{p, reason, size})
	}
}

func (r *copyRun) fail(p string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.NErrors++
	if len(r.out.Errors) < maxListed {
		r.out.Errors = append(r.out.Errors, fileError{p, err.Error()})
	}
}

func (a copyAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	src, root, err := connFrom(in, "").davRoot(ctx)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	tgt, err := openTarget(ctx, in)
	if err != nil {
		return nil, err
	}
	defer tgt.close()

	st := copyState{Ledger: ledgerPath(stateDir(in), req.IdempotencyKey)}
	if len(req.Checkpoint) > 0 {
		var cp copyState
		if json.Unmarshal(req.Checkpoint, &cp) == nil && cp.Ledger != "" {
			st.Ledger = cp.Ledger
		}
	}
	run := &copyRun{src: src, srcRoot: joinPath(root, ctyx.StringAttr(in, "path")), tgt: tgt, done: map[string]bool{}, ev: ev}
	run.out = copyOutputs{Skipped: []skipped{}, Errors: []fileError{}, Changed: []string{}, Ledger: st.Ledger, TargetDesc: tgt.describe()}
	pending := map[string]ledgerLine{} // intents not settled
	err = readLedger(st.Ledger, func(l ledgerLine) error {
		switch l.Op {
		case "intent":
			pending[l.Path] = l
		case "drop":
			delete(pending, l.Path)
		case "left":
			delete(pending, l.Path)
			run.done[l.Path] = true
			run.skip(l.Path, "left by an interrupted upload with other content than the source", l.Size)
		case "file":
			delete(pending, l.Path)
			run.done[l.Path] = true
			run.resumed.Add(1)
			run.files.Add(1)
			run.bytes.Add(l.Size)
			run.resumedBytes += l.Size
		case "dir":
			run.folders.Add(1)
			run.fresh.Store(l.Path, true)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n := len(run.done); n > 0 {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("resuming: %d files already copied by an earlier attempt", n))
	}
	led, err := openLedger(st.Ledger)
	if err != nil {
		return nil, err
	}
	run.led = led
	if err := run.settlePending(ctx, pending); err != nil {
		led.close()
		return nil, err
	}
	undo, _ := json.Marshal(copyState{Ledger: st.Ledger})
	res := &sdk.Result{UndoState: undo}
	// The ledger exists before anything is created: an interrupted step
	// can be undone from its checkpoint.
	if err := ev.Checkpoint(undo); err != nil {
		led.close()
		return nil, err
	}

	err = run.run(ctx, intAttr(in, "concurrency", defaultConcurrency))
	if cerr := led.close(); err == nil && cerr != nil {
		err = cerr
	}
	run.out.Files, run.out.Bytes = run.files.Load(), run.bytes.Load()
	run.out.Folders, run.out.Resumed, run.out.Verified = run.folders.Load(), run.resumed.Load(), run.verified.Load()
	ev.Progress(run.bytes.Load(), max(run.seenBytes.Load()+run.resumedBytes, run.bytes.Load()), "bytes")
	if mr, ok := tgt.(mtimeReporter); ok {
		if run.out.MTimeLost = mr.mtimesLost(); run.out.MTimeLost > 0 {
			ev.Log(sdk.LevelWarn, fmt.Sprintf("%s did not confirm keeping the mtime of %d files (no \"X-OC-Mtime: accepted\"): a plain WebDAV server gives them the upload time", tgt.describe(), run.out.MTimeLost))
		}
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("copied %d files (%d bytes) to %s; %d resumed, %d skipped, %d errors",
		run.out.Files, run.out.Bytes, run.out.TargetDesc, run.out.Resumed, run.out.NSkipped, run.out.NErrors))
	if v, eerr := sdk.Encode(a.Schema(), run.out); eerr == nil {
		res.Outputs = v
	} else if err == nil {
		err = eerr
	}
	if err != nil {
		return res, err
	}
	if run.out.NErrors > 0 && ctyx.BoolAttr(in, "fail_on_errors", true) {
		first := run.out.Errors[0]
		return res, sdk.Errorf(sdk.KindConflict, true, "see the errors output; apply again to copy what is missing (finished files are not sent again)",
			"%d files could not be copied, e.g. %s: %s", run.out.NErrors, first.Path, first.Message)
	}
	return res, nil
}

// run walks the source and copies files as they are found.
func (r *copyRun) run(ctx context.Context, workers int) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.cancel = cancel
	created, err := r.tgt.mkdir(ctx, "")
	if err != nil {
		return fmt.Errorf("target %s: %w", r.tgt.describe(), err)
	}
	if created {
		if err := r.led.add(ledgerLine{Op: "dir", Path: ""}); err != nil {
			return err
		}
		r.folders.Add(1)
		r.fresh.Store("", true)
	}
	found := make(chan entry, 4*workers)
	jobs := make(chan job, 4*workers)
	go r.intents(ctx, found, jobs)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range jobs {
				r.copyFile(ctx, e)
			}
		}()
	}
	stop := make(chan struct{})
	var tick sync.WaitGroup
	tick.Add(1)
	go func() {
		defer tick.Done()
		r.report(stop)
	}()

	walkErr := r.src.walk(ctx, r.srcRoot, min(workers, 4), func(e entry) error {
		if e.Dir {
			created, err := r.tgt.mkdir(ctx, e.Path)
			if err != nil {
				if reason, ok := skipReason(err); ok {
					r.skip(e.Path+"/", reason, 0)
					return nil
				}
				return fmt.Errorf("folder %s: %w", e.Path, err)
			}
			if created {
				r.folders.Add(1)
				r.fresh.Store(e.Path, true)
				return r.led.add(ledgerLine{Op: "dir", Path: e.Path})
			}
			return nil
		}
		if r.done[e.Path] {
			return nil
		}
		r.seenFiles.Add(1)
		r.seenBytes.Add(e.Size)
		select {
		case found <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(found)
	wg.Wait()
	close(stop)
	tick.Wait()
	r.mu.Lock()
	fatal := r.fatalErr
	r.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if walkErr != nil {
		return fmt.Errorf("walk %s: %w", r.srcRoot, walkErr)
	}
	return nil
}

// report sends progress every second and a checkpoint (the ledger made
// durable) every five, until stop closes.
func (r *copyRun) report(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	n := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n++
		r.ev.Progress(r.bytes.Load(), max(r.seenBytes.Load()+r.resumedBytes, r.bytes.Load()), "bytes")
		if n%5 == 0 {
			done := r.bytes.Load() - r.resumedBytes
			r.ev.Log(sdk.LevelInfo, fmt.Sprintf("%d of %d files found so far copied, %.1f MB/s",
				r.files.Load(), r.seenFiles.Load()+r.resumed.Load(), float64(done)/1e6/time.Since(start).Seconds()))
			if err := r.led.sync(); err != nil {
				r.fatal(err)
				return
			}
			b, _ := json.Marshal(copyState{Ledger: r.led.path, Files: r.files.Load(), Bytes: r.bytes.Load()})
			if err := r.ev.Checkpoint(b); err != nil {
				r.fatal(err)
				return
			}
		}
	}
}

// maxFileAttempts bounds the retries of one file after retryable errors
// (beyond the client's own retries of single requests).
const maxFileAttempts = 3

func (r *copyRun) copyFile(ctx context.Context, j job) {
	e := j.e
	if !j.intent && !r.intendAlone(ctx, e) {
		return
	}
	p := joinPath(r.srcRoot, e.Path)
	for attempt := 1; ; attempt++ {
		src := newSrcFile(ctx, r.src, p, e)
		line, err := r.tgt.put(ctx, src, e.Path)
		src.close()
		if line.Op != "" && afterPut != nil {
			afterPut(e.Path)
		}
		if line.Op != "" {
			if lerr := r.led.add(line); lerr != nil {
				r.fatal(lerr)
				return
			}
		}
		if err == nil {
			r.files.Add(1)
			r.bytes.Add(line.Size)
			if src.serverChecked() {
				r.verified.Add(1)
			}
			if src.changed {
				r.mu.Lock()
				if len(r.out.Changed) < maxListed {
					r.out.Changed = append(r.out.Changed, e.Path)
				}
				r.mu.Unlock()
				r.ev.Log(sdk.LevelWarn, fmt.Sprintf("%s changed at the source since the listing; copied the version read", e.Path))
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if reason, ok := skipReason(err); ok {
			if attempt > 1 {
				// An earlier attempt may have landed before its answer
				// was lost: the target is looked at.
				if err := r.settleOne(ctx, ledgerLine{Op: "intent", Path: e.Path, Size: e.Size}, false); err != nil {
					r.fail(e.Path, err)
				}
				return
			}
			_ = r.led.add(ledgerLine{Op: "drop", Path: e.Path})
			r.skip(e.Path, reason, e.Size)
			return
		}
		se := sdk.Classify(err)
		switch {
		case se.Kind == sdk.KindNotFound && statusOf(err) == 404 && line.Op == "":
			_ = r.led.add(ledgerLine{Op: "drop", Path: e.Path})
			r.skip(e.Path, "gone from the source since the listing", e.Size)
			return
		case se.Kind == sdk.KindQuota && !se.Retryable, se.Kind == sdk.KindAuth:
			r.fatal(fmt.Errorf("%s: %w", e.Path, err))
			return
		case se.Retryable && line.Op == "" && attempt < maxFileAttempts:
			wait := backoff.Policy{Base: time.Second}.Delay(attempt)
			var he *HTTPError
			if errors.As(err, &he) && he.RetryAfter > 0 {
				wait = he.RetryAfter
			}
			r.ev.Log(sdk.LevelWarn, fmt.Sprintf("%s: %v; trying again in %s", e.Path, err, wait))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		r.fail(e.Path, err)
		return
	}
}

func (a copyAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var st copyState
	if err := json.Unmarshal(req.UndoState, &st); err != nil || st.Ledger == "" {
		if len(req.UndoState) == 0 {
			return nil // nothing was created
		}
		return sdk.Errorf(sdk.KindInvalid, false, "", "undo state: %v", err)
	}
	tgt, err := openTarget(ctx, req.Inputs)
	if err != nil {
		return err
	}
	defer tgt.close()
	var files []ledgerLine
	var dirs []string
	pending := map[string]ledgerLine{}
	if err := readLedger(st.Ledger, func(l ledgerLine) error {
		switch l.Op {
		case "file":
			delete(pending, l.Path)
			files = append(files, l)
		case "dir":
			dirs = append(dirs, l.Path)
		case "intent", "left":
			pending[l.Path] = l // looked at again
		case "drop":
			delete(pending, l.Path)
		}
		return nil
	}); err != nil {
		return err
	}
	if _, err := os.Stat(st.Ledger); err != nil && len(files)+len(dirs) == 0 {
		return sdk.Errorf(sdk.KindNotFound, false, "the ledger is needed to know what the copy created; restore it or delete by hand",
			"ledger %s: %v", st.Ledger, err)
	}
	var drift []string
	var deleted int64
	more, left, err := settleForUndo(ctx, req, tgt, pending)
	if err != nil {
		return err
	}
	files, drift = append(files, more...), left
	for i, l := range files {
		d, err := tgt.undoFile(ctx, l, req.Force)
		if err != nil {
			return fmt.Errorf("undo %s: %w", l.Path, err)
		}
		if d != "" {
			drift = append(drift, d)
		} else {
			deleted++
		}
		if i%100 == 0 {
			ev.Progress(int64(i+1), int64(len(files)), "files")
		}
	}
	// Deepest folders first.
	for i := len(dirs) - 1; i >= 0; i-- {
		d, err := tgt.undoDir(ctx, dirs[i], req.Force)
		if err != nil {
			return fmt.Errorf("undo folder %s: %w", displayRel(dirs[i]), err)
		}
		if d != "" {
			drift = append(drift, d)
		}
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("undo: deleted %d files the copy created, left %d changed since", deleted, len(drift)))
	for _, d := range drift {
		ev.Log(sdk.LevelWarn, "left in place: "+d)
	}
	if len(drift) > 0 && !req.Force {
		return sdk.Errorf(sdk.KindConflict, false, "look at what changed; run `runbook rollback -force` to delete changed files anyway (folders with others' files always stay)",
			"%d things changed since the copy and were left: %s", len(drift), strings.Join(first(drift, 5), "; "))
	}
	return nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

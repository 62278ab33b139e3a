package nextcloud

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// Intents close the window between a file's upload and its ledger line: a
// copy killed there would leave a file that neither a resumed copy nor the
// undo knows it made. Before a file is uploaded, an "intent" line saying
// that its target path was free is in the ledger (written to the kernel in
// batches, without an fsync per file); a "file" line settles it once the
// file exists, a "drop" line when nothing was created. An intent left
// unsettled is settled by looking at the target: the same size and
// checksum as the source file means the upload landed (it is recorded, and
// undo may delete it); anything else is left there and reported (a
// "left" line, which undo looks at again).

// afterPut, set by tests, runs between a file's upload and its ledger
// line: where a crash is injected.
var afterPut func(rel string)

// prober is what settling an intent needs of a target.
type prober interface {
	// found describes what is at rel now (ok false when nothing): Size,
	// and SHA1 (hex) or MD5 (base64) of its content, with what undo
	// checks (ETag, MTime, ID).
	found(ctx context.Context, rel string) (l ledgerLine, ok bool, err error)
	// free reports that nothing is at rel (checked where the copy did not
	// create the folder).
	free(ctx context.Context, rel string) (bool, error)
}

// digest is a source file's size and checksums.
type digest struct {
	size int64
	sha1 string // hex
	md5  string // base64
}

// sourceDigest reads a source file through and hashes it.
func sourceDigest(ctx context.Context, c *Client, p string) (digest, error) {
	resp, err := c.Do(ctx, Request{Method: http.MethodGet, Path: p, Idempotent: true})
	if err != nil {
		return digest{}, err
	}
	defer resp.Body.Close()
	return hashReader(resp.Body)
}

func hashReader(r io.Reader) (digest, error) {
	s, m := sha1.New(), md5.New()
	n, err := io.Copy(io.MultiWriter(s, m), r)
	if err != nil {
		return digest{}, err
	}
	return digest{size: n, sha1: hex.EncodeToString(s.Sum(nil)), md5: base64.StdEncoding.EncodeToString(m.Sum(nil))}, nil
}

// settleOutcome is what an unsettled intent turned out to be.
type settleOutcome int

const (
	settleNothing settleOutcome = iota // nothing at the target: the upload did not land
	settleOurs                         // the source's content: the upload landed
	settleOther                        // something else: left there
)

// settleIntent looks at the target path of an unsettled intent and compares it
// with the source file (srcPath on src). For settleOurs it returns the
// ledger line of the file; for settleOther, the line naming it (undo
// -force deletes it), with why it was left.
func settleIntent(ctx context.Context, tgt target, src *Client, srcPath string, in ledgerLine) (settleOutcome, ledgerLine, string, error) {
	pr, ok := tgt.(prober)
	if !ok {
		return settleOther, ledgerLine{}, in.Path + ": the target cannot be checked", nil
	}
	f, ok, err := pr.found(ctx, in.Path)
	if err != nil || !ok {
		return settleNothing, ledgerLine{}, "", err
	}
	other := ledgerLine{Op: "file", Path: in.Path, ID: f.ID}
	d, err := sourceDigest(ctx, src, srcPath)
	if kindOf(err) == sdk.KindNotFound {
		return settleOther, other, fmt.Sprintf("%s: left by an interrupted upload; gone from the source since, so it cannot be compared", in.Path), nil
	}
	if err != nil {
		return settleNothing, ledgerLine{}, "", fmt.Errorf("read the source of %s: %w", in.Path, err)
	}
	same := f.Size == d.size && ((f.SHA1 != "" && f.SHA1 == d.sha1) || (f.SHA1 == "" && f.MD5 != "" && f.MD5 == d.md5))
	if !same {
		return settleOther, other, fmt.Sprintf("%s: an interrupted upload's target holds other content than the source (%d bytes, the source has %d): changed since, left", in.Path, f.Size, d.size), nil
	}
	f.Op, f.Path, f.SHA1 = "file", in.Path, d.sha1
	return settleOurs, f, "", nil
}

// local target

func (t *localTarget) found(_ context.Context, rel string) (ledgerLine, bool, error) {
	p := t.abs(rel)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ledgerLine{}, false, nil
	}
	if err != nil {
		return ledgerLine{}, false, err
	}
	if !st.Mode().IsRegular() {
		return ledgerLine{Size: -1}, true, nil
	}
	sum, err := fileSHA1(p)
	if err != nil {
		return ledgerLine{}, false, err
	}
	return ledgerLine{Size: st.Size(), SHA1: sum, MTime: st.ModTime().Unix()}, true, nil
}

func (t *localTarget) free(_ context.Context, rel string) (bool, error) {
	_, err := os.Lstat(t.abs(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return false, err
}

// WebDAV target

func (t *davTarget) found(ctx context.Context, rel string) (ledgerLine, bool, error) {
	p := joinPath(t.root, rel)
	e, err := t.c.stat(ctx, p)
	if kindOf(err) == sdk.KindNotFound {
		return ledgerLine{}, false, nil
	}
	if err != nil {
		return ledgerLine{}, false, err
	}
	if e.Dir {
		return ledgerLine{Size: -1}, true, nil
	}
	resp, err := t.c.Do(ctx, Request{Method: http.MethodGet, Path: p, Idempotent: true})
	if err != nil {
		return ledgerLine{}, false, err
	}
	defer resp.Body.Close()
	d, err := hashReader(resp.Body)
	if err != nil {
		return ledgerLine{}, false, err
	}
	return ledgerLine{Size: d.size, SHA1: d.sha1, ETag: e.ETag, MTime: unixOrZero(e.MTime)}, true, nil
}

func (t *davTarget) free(ctx context.Context, rel string) (bool, error) {
	_, err := t.c.stat(ctx, joinPath(t.root, rel))
	if kindOf(err) == sdk.KindNotFound {
		return true, nil
	}
	return false, err
}

// Cozy target

func (t *cozyTarget) found(ctx context.Context, rel string) (ledgerLine, bool, error) {
	d, err := t.lookup(ctx, t.cozyPath(rel))
	if kindOf(err) == sdk.KindNotFound {
		return ledgerLine{}, false, nil
	}
	if err != nil {
		return ledgerLine{}, false, err
	}
	a := d.Data.Attributes
	if a.Type != "file" || a.Trashed {
		return ledgerLine{Size: -1}, !a.Trashed, nil
	}
	size, _ := strconv.ParseInt(a.Size, 10, 64)
	var mt int64
	if ts, err := time.Parse(time.RFC3339, a.UpdatedAt); err == nil {
		mt = ts.Unix()
	}
	return ledgerLine{Size: size, MD5: a.MD5Sum, ETag: d.Data.Meta.Rev, ID: d.Data.ID, MTime: mt}, true, nil
}

func (t *cozyTarget) free(ctx context.Context, rel string) (bool, error) {
	_, ok, err := t.found(ctx, rel)
	return !ok && err == nil, err
}

// intentBatch bounds the intents handed to the kernel in one write.
const intentBatch = 256

// job is a file to copy; intent says its intent line is in the ledger.
type job struct {
	e      entry
	intent bool
}

// intents passes the files the walk finds on to the workers, in batches:
// the intent of each file whose folder the copy created is written, the
// batch flushed to the kernel, then the files are handed on. Files in
// folders that existed are left to intendAlone.
func (r *copyRun) intents(ctx context.Context, found <-chan entry, jobs chan<- job) {
	defer close(jobs)
	batch := make([]job, 0, intentBatch)
	for e := range found {
		batch = append(batch[:0], job{e: e})
	more:
		for len(batch) < cap(batch) {
			select {
			case e, ok := <-found:
				if !ok {
					break more
				}
				batch = append(batch, job{e: e})
			default:
				break more
			}
		}
		n := 0
		for i := range batch {
			if _, ok := r.fresh.Load(parentRel(batch[i].e.Path)); ok {
				if err := r.led.add(ledgerLine{Op: "intent", Path: batch[i].e.Path, Size: batch[i].e.Size}); err != nil {
					r.fatal(err)
					return
				}
				batch[i].intent = true
				n++
			}
		}
		if n > 0 {
			if err := r.led.flush(); err != nil {
				r.fatal(err)
				return
			}
		}
		for _, j := range batch {
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}
}

// intendAlone checks that nothing is at the path of a file in a folder
// the copy did not create, and writes its intent; false when the file is
// not to be copied (it exists: skipped).
func (r *copyRun) intendAlone(ctx context.Context, e entry) bool {
	if pr, ok := r.tgt.(prober); ok {
		free, err := pr.free(ctx, e.Path)
		if err != nil {
			if ctx.Err() == nil {
				r.fail(e.Path, err)
			}
			return false
		}
		if !free {
			r.skip(e.Path, "exists at the target", e.Size)
			return false
		}
	}
	if err := r.led.add(ledgerLine{Op: "intent", Path: e.Path, Size: e.Size}); err != nil {
		r.fatal(err)
		return false
	}
	if err := r.led.flush(); err != nil {
		r.fatal(err)
		return false
	}
	return true
}

// settlePending settles the intents an earlier attempt left, before the
// walk: a file found uploaded is recorded and not sent again.
func (r *copyRun) settlePending(ctx context.Context, pending map[string]ledgerLine) error {
	for _, p := range slices.Sorted(maps.Keys(pending)) {
		if err := r.settleOne(ctx, pending[p], true); err != nil {
			return fmt.Errorf("check %s, left by an interrupted upload: %w", p, err)
		}
	}
	return nil
}

// settleOne settles one intent by looking at the target. before says it
// runs before the walk (the file is then marked done).
func (r *copyRun) settleOne(ctx context.Context, in ledgerLine, before bool) error {
	out, line, why, err := settleIntent(ctx, r.tgt, r.src, joinPath(r.srcRoot, in.Path), in)
	if err != nil {
		return err
	}
	switch out {
	case settleOurs:
		if err := r.led.add(line); err != nil {
			return err
		}
		r.files.Add(1)
		r.bytes.Add(line.Size)
		if before {
			r.done[in.Path] = true
			r.resumed.Add(1)
			r.resumedBytes += line.Size
		}
		r.ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: uploaded before an interruption; checked against the source and recorded", in.Path))
	case settleOther:
		// Left there: undo looks at it again.
		line.Op = "left"
		if err := r.led.add(line); err != nil {
			return err
		}
		if before {
			r.done[in.Path] = true
		}
		r.skip(in.Path, why, in.Size)
		r.ev.Log(sdk.LevelWarn, "left in place: "+why)
	default:
		return r.led.add(ledgerLine{Op: "drop", Path: in.Path})
	}
	return nil
}

// settleForUndo settles the intents a copy left for its undo: the files
// found uploaded are to delete like the others; what holds other content
// is left and reported (deleted with force: the path was free before).
func settleForUndo(ctx context.Context, req *sdk.UndoRequest, tgt target, pending map[string]ledgerLine) (files []ledgerLine, drift []string, err error) {
	if len(pending) == 0 {
		return nil, nil, nil
	}
	src, root, err := connFrom(req.Inputs, "").davRoot(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("source, to check what an interrupted upload left: %w", err)
	}
	defer src.Close()
	srcRoot := joinPath(root, ctyx.StringAttr(req.Inputs, "path"))
	for _, p := range slices.Sorted(maps.Keys(pending)) {
		out, line, why, err := settleIntent(ctx, tgt, src, joinPath(srcRoot, p), pending[p])
		if err != nil {
			return nil, nil, fmt.Errorf("check %s, left by an interrupted upload: %w", p, err)
		}
		switch {
		case out == settleOurs, out == settleOther && req.Force:
			files = append(files, line)
		case out == settleOther:
			drift = append(drift, why)
		}
	}
	return files, drift, nil
}

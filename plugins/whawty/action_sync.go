package whawty

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"github.com/runbookdev/runbook/sdk"
)

// syncAction is whawty.sync.
type syncAction struct{}

var (
	_ sdk.Action    = (*syncAction)(nil)
	_ sdk.Planner   = (*syncAction)(nil)
	_ sdk.Undoer    = (*syncAction)(nil)
	_ sdk.Validator = (*syncAction)(nil)
)

type syncInputs struct {
	Source            string `cty:"source"`
	Destination       string `cty:"destination"`
	DestinationConfig string `cty:"destination_config"`
}

type syncOutputs struct {
	Added     int64 `cty:"added"`
	Updated   int64 `cty:"updated"`
	Deleted   int64 `cty:"deleted"`
	Unchanged int64 `cty:"unchanged"`
	Files     int64 `cty:"files"`
	Bytes     int64 `cty:"bytes"`
}

func (*syncAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "sync",
		Description: "Mirror a master store to a slave store, comparing by content. Each file is replaced " +
			"atomically through the destination's own .tmp/, extra files are deleted, modes are 0600, and " +
			"the destination passes whawty's check at the end (or the sync is undone). Refuses a source " +
			"that would fail whawty's check before writing anything (a hash whawty only warns about is mirrored, with a warning). " +
			"With destination_config, also refuses before writing when the slave's own config could not verify a hash the sync " +
			"would write (a parameter-set the slave does not know) or no admin would be left with a hash it supports.",
		Inputs: append([]sdk.Attribute{
			{Name: "source", Type: cty.String, Required: true, Description: "Master store location (path or ssh://user@host:port/path)."},
			{Name: "destination", Type: cty.String, Required: true, Description: "Slave store location; must exist."},
			{Name: "destination_config", Type: cty.String, Description: "The slave's auth-store.yaml (path or ssh://user@host:port/path): the result is judged with it before anything is written."},
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "added", Type: cty.Number, Description: "Files added."},
			{Name: "updated", Type: cty.Number, Description: "Files replaced."},
			{Name: "deleted", Type: cty.Number, Description: "Files deleted."},
			{Name: "unchanged", Type: cty.Number, Description: "Files already identical."},
			{Name: "files", Type: cty.Number, Description: "Hash files mirrored from the source."},
			{Name: "bytes", Type: cty.Number, Description: "Bytes written to the destination."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (*syncAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	d = locDiag(d, inputs, "source", true)
	d = locDiag(d, inputs, "destination", true)
	d = locDiag(d, inputs, "destination_config", false)
	return d
}

var _ sdk.Planner = (*syncAction)(nil)

func (*syncAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "sync between stores known only at apply time"}, nil
	}
	var in syncInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	p, err := planSync(ctx, c, in, nil)
	if err != nil {
		return nil, err
	}
	return &sdk.PlanResult{
		Summary:  p.summary(),
		Counts:   map[string]int64{"add": p.counts[opAdd], "update": p.counts[opUpdate], "delete": p.counts[opDelete], "unchanged": p.Unchanged},
		Warnings: p.Warnings,
		Details:  p.details(200),
	}, nil
}

// syncUndo is what undo needs: the destination's prior state of every file
// the sync touched, in the order they were touched.
type syncUndo struct {
	Destination string      `json:"destination"`
	Entries     []undoEntry `json:"entries"`
}

type undoEntry struct {
	Name    string `json:"name"`
	Existed bool   `json:"existed"`
	Data    []byte `json:"data,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
}

func (u *syncUndo) marshal() []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_ = json.NewEncoder(zw).Encode(u)
	_ = zw.Close()
	return b.Bytes()
}

// mergeUndo keeps prior's entries (the state before an interrupted earlier
// attempt) and adds cur's entries for the other files.
func mergeUndo(prior, cur *syncUndo) *syncUndo {
	if prior == nil {
		return cur
	}
	out := &syncUndo{Destination: cur.Destination, Entries: append([]undoEntry(nil), prior.Entries...)}
	seen := make(map[string]bool, len(prior.Entries))
	for _, e := range prior.Entries {
		seen[e.Name] = true
	}
	for _, e := range cur.Entries {
		if !seen[e.Name] {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

func unmarshalSyncUndo(b []byte) (*syncUndo, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var u syncUndo
	return &u, json.Unmarshal(raw, &u)
}

func (a *syncAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in syncInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	return runSync(ctx, c, in, req.Checkpoint, a.Schema(), ev)
}

// runSync plans and applies a sync; on failure it restores the destination
// before returning.
//
// checkpoint is the undo state an interrupted earlier attempt of the same
// step journaled before committing: the destination's state before that
// attempt wins over what this attempt finds, so undo still restores the
// destination as it was before the step.
func runSync(ctx context.Context, c *conns, in syncInputs, checkpoint []byte, schema sdk.ActionSchema, ev sdk.Events) (*sdk.Result, error) {
	pre := newPrestager(ctx)
	p, err := planSync(ctx, c, in, pre)
	if err != nil {
		pre.discard()
		return nil, err
	}
	if len(checkpoint) > 0 {
		prev, err := unmarshalSyncUndo(checkpoint)
		if err != nil || prev.Destination != p.Dst.String() {
			pre.discard()
			return nil, sdk.Errorf(sdk.KindConflict, false,
				"check the destination against the master by hand, then run the step afresh",
				"cannot use the checkpoint of the interrupted attempt (destination %s)", p.Dst)
		}
		p.prior = prev
		ev.Log(sdk.LevelInfo, fmt.Sprintf("resuming: %d file(s) keep their state from before the interrupted attempt", len(prev.Entries)))
	}
	for _, w := range p.Warnings {
		ev.Log(sdk.LevelWarn, w)
	}
	ev.Log(sdk.LevelInfo, p.summary())
	undo := &syncUndo{Destination: p.Dst.String()}
	out := syncOutputs{Unchanged: p.Unchanged, Files: p.SourceFiles}
	if err := p.apply(ctx, undo, &out, ev); err != nil {
		// Put the destination back as it was before reporting.
		undo = mergeUndo(p.prior, undo)
		if uerr := undoSync(context.WithoutCancel(ctx), p.DstFS, p.Dst, undo, ev); uerr != nil {
			ev.Log(sdk.LevelError, fmt.Sprintf("restoring %s after the failed sync failed too: %v", p.Dst, uerr))
			return &sdk.Result{UndoState: undo.marshal()}, err
		}
		ev.Log(sdk.LevelWarn, fmt.Sprintf("sync failed; %s restored as it was", p.Dst))
		return nil, err
	}
	res := &sdk.Result{UndoState: mergeUndo(p.prior, undo).marshal()}
	if res.Outputs, err = sdk.Encode(schema, out); err != nil {
		return res, err
	}
	return res, nil
}

// apply performs p's operations in three phases: stage every new file in
// the destination's .tmp/ (in parallel; nothing visible changes yet), make
// them durable at once, then commit renames and deletes in order, recording
// each file's prior state in undo before touching it. Then it verifies the
// destination.
func (p *syncPlan) apply(ctx context.Context, undo *syncUndo, out *syncOutputs, ev sdk.Events) error {
	tmp := path.Join(p.Dst.Path, ".tmp")
	if !p.dstHasTmp && len(p.Ops) > 0 {
		if err := p.DstFS.Mkdir(tmp, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fsError("create .tmp in", p.Dst, err)
		}
	}
	defer p.pre.discard() // staged while reading but not needed (or failure)
	var writes []stageReq
	staged := map[int]string{} // temp path by op
	for i, op := range p.Ops {
		if op.Kind == opDelete {
			continue
		}
		if t, ok := p.pre.take(op.Name, op.Data); ok {
			staged[i] = t
			continue
		}
		// New files belong to the store directory's owner (the whawty user).
		uid, gid := p.dstOwner[0], p.dstOwner[1]
		if de, ok := p.dstEntry(op.Name); ok {
			uid, gid = ownerOf(p.dstOwner, de)
		}
		writes = append(writes, stageReq{op: i, data: op.Data, perm: 0o600, uid: uid, gid: gid})
	}
	p.pre.discard()
	more, err := stageAll(ctx, p.DstFS, tmp, writes, func(done int) {
		ev.Progress(int64(len(staged)+done), int64(len(p.Ops)), "files")
	})
	if err != nil {
		for _, t := range staged {
			_ = p.DstFS.Remove(t)
		}
		return fsError("stage files in", p.Dst.join(".tmp"), err)
	}
	for i, t := range more {
		staged[i] = t
	}
	committed := 0
	defer func() { // staged files not committed (failure) must not linger
		for i, op := range p.Ops {
			if t, ok := staged[i]; ok && i >= committed && op.Kind != opDelete {
				_ = p.DstFS.Remove(t)
			}
		}
	}()
	if len(staged) > 0 {
		if err := p.DstFS.Flush(tmp); err != nil {
			return fsError("flush", p.Dst, err)
		}
	}
	// Every file's prior state, journaled (with the prior states of an
	// interrupted attempt) before anything visible changes.
	entries := make([]undoEntry, len(p.Ops))
	for i, op := range p.Ops {
		ue := undoEntry{Name: op.Name, UID: -1, GID: -1}
		if de, ok := p.dstEntry(op.Name); ok {
			data, isHash := p.dstContent(op.Name)
			ue.Existed, ue.Data, ue.Mode, ue.UID, ue.GID = true, data, uint32(de.Mode.Perm()), de.UID, de.GID
			if !isHash {
				// A stray file: read it so undo can restore it.
				b, err := p.DstFS.ReadFile(path.Join(p.Dst.Path, op.Name))
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fsError("read", p.Dst.join(op.Name), err)
				}
				ue.Data = b
			}
		}
		entries[i] = ue
	}
	if len(p.Ops) > 0 {
		planned := mergeUndo(p.prior, &syncUndo{Destination: undo.Destination, Entries: entries})
		if err := ev.Checkpoint(planned.marshal()); err != nil {
			return sdk.Errorf(sdk.KindInternal, true, "retry; nothing was changed", "journal the sync's undo state: %v", err)
		}
	}
	for i, op := range p.Ops {
		if err := ctx.Err(); err != nil {
			return sdk.Errorf(sdk.KindCancelled, true, "re-run the step", "sync interrupted: %v", err)
		}
		undo.Entries = append(undo.Entries, entries[i])
		target := path.Join(p.Dst.Path, op.Name)
		switch op.Kind {
		case opDelete:
			if err := p.DstFS.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fsError("delete", p.Dst.join(op.Name), err)
			}
			out.Deleted++
		default:
			if err := p.DstFS.Rename(staged[i], target); err != nil {
				return fsError("replace", p.Dst.join(op.Name), err)
			}
			out.Bytes += int64(len(op.Data))
			if op.Kind == opAdd {
				out.Added++
			} else {
				out.Updated++
			}
		}
		committed = i + 1
	}
	p.DstFS.SyncDir(p.Dst.Path)
	ev.Progress(int64(len(p.Ops)), int64(len(p.Ops)), "files")
	return p.verifyDestination(ctx)
}

// stageReq is one file to stage; op identifies it in the result.
type stageReq struct {
	op       int
	data     []byte
	perm     fs.FileMode
	uid, gid int
}

// stageAll stages reqs in tmpDir with fsys's parallelism and returns the
// temp path per op. On failure it removes what it staged.
func stageAll(ctx context.Context, fsys fileSystem, tmpDir string, reqs []stageReq, progress func(done int)) (map[int]string, error) {
	out := make(map[int]string, len(reqs))
	var (
		mu   sync.Mutex // guards out and done
		done int
	)
	// The first failure cancels gctx: no further file is staged.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fsys.Parallelism())
	for _, r := range reqs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			t, err := fsys.Stage(tmpDir, r.data, r.perm, r.uid, r.gid)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			out[r.op] = t
			done++
			if done%256 == 0 {
				progress(done)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		for _, t := range out {
			_ = fsys.Remove(t)
		}
		return nil, err
	}
	return out, nil
}

var _ sdk.Undoer = (*syncAction)(nil)

func (*syncAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if len(req.UndoState) == 0 {
		ev.Log(sdk.LevelInfo, "nothing to undo: the sync wrote nothing")
		return nil
	}
	var in syncInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return err
	}
	u, err := unmarshalSyncUndo(req.UndoState)
	if err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "restore the slave from the master or a backup", "bad undo state: %v", err)
	}
	dst, err := parseLocation(u.Destination)
	if err != nil {
		return err
	}
	c := newConns(opts)
	defer c.Close()
	fsys, err := c.fs(ctx, dst)
	if err != nil {
		return err
	}
	return undoSync(ctx, fsys, dst, u, ev)
}

// undoSync puts back every file the sync touched: it stages the old
// contents that differ from what is there now, makes them durable, then
// renames and removes in reverse order.
func undoSync(ctx context.Context, fsys fileSystem, dst location, u *syncUndo, ev sdk.Events) error {
	tmp := path.Join(dst.Path, ".tmp")
	var reqs []stageReq
	for i, e := range u.Entries {
		if !e.Existed {
			continue
		}
		target := path.Join(dst.Path, e.Name)
		if cur, err := fsys.Stat(target); err == nil && cur.Regular && cur.Mode.Perm() == fs.FileMode(e.Mode).Perm() && cur.Size == int64(len(e.Data)) {
			if b, err := fsys.ReadFile(target); err == nil && bytes.Equal(b, e.Data) {
				continue // already as it was
			}
		}
		reqs = append(reqs, stageReq{op: i, data: e.Data, perm: fs.FileMode(e.Mode).Perm(), uid: e.UID, gid: e.GID})
	}
	staged, err := stageAll(ctx, fsys, tmp, reqs, func(int) {})
	if err != nil {
		return fsError("stage restores in", dst.join(".tmp"), err)
	}
	if len(reqs) > 0 {
		if err := fsys.Flush(tmp); err != nil {
			return fsError("flush", dst, err)
		}
	}
	total := int64(len(u.Entries))
	for i := len(u.Entries) - 1; i >= 0; i-- {
		e := u.Entries[i]
		target := path.Join(dst.Path, e.Name)
		if !e.Existed {
			if err := fsys.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fsError("remove", dst.join(e.Name), err)
			}
		} else if t, ok := staged[i]; ok {
			if err := fsys.Rename(t, target); err != nil {
				return fsError("restore", dst.join(e.Name), err)
			}
			delete(staged, i)
		}
		if done := total - int64(i); done%256 == 0 || done == total {
			ev.Progress(done, total, "files")
		}
	}
	fsys.SyncDir(dst.Path)
	ev.Log(sdk.LevelInfo, fmt.Sprintf("restored %d file(s) in %s", total, dst))
	return nil
}

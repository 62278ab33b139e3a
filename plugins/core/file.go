package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// fileAction writes a file; its native undo restores what was there.
//
// Local attackers: the path may lie in a directory another user can write.
// The new content, owner and mode are set on the open temporary file
// before it is renamed into place, and no path-based chown or chmod ever
// follows the rename, so a symlink swapped in at the path cannot hand
// another file to anyone. Existing files are read with O_NOFOLLOW.
type fileAction struct{}

var _ sdk.Undoer = (*fileAction)(nil)

// fileUndo is the undo state of core.file. Content is the previous
// content of an overwritten file: when the step's content is sensitive,
// it usually is too, and only the engine's sealing of undo state keeps it
// from the journal in clear.
type fileUndo struct {
	Path string `json:"path"`
	// Target is the file written when Path was a symlink followed
	// (follow_symlinks = true); the symlink itself is never touched.
	Target  string     `json:"target,omitempty"`
	Existed bool       `json:"existed"`
	Content []byte     `json:"content,omitempty"`
	Mode    uint32     `json:"mode,omitempty"`
	Owner   *fileOwner `json:"owner,omitempty"` // nil: not known (older state, or no owners on this OS)
	// Left is what the step left, checked before undoing (nil in undo
	// states of older versions: no check).
	Left *fileLeft `json:"left,omitempty"`
}

// fileOwner is a numeric owner.
type fileOwner struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

func (o *fileOwner) String() string {
	if o == nil {
		return "unknown"
	}
	return fmt.Sprintf("%d:%d", o.UID, o.GID)
}

func sameOwner(a, b *fileOwner) bool {
	return a == nil || b == nil || *a == *b
}

// fileLeft is the state a step left its file in.
type fileLeft struct {
	// SHA256 of the content written; empty when the content was
	// sensitive (the undo then compares with the step's inputs).
	SHA256 string     `json:"sha256,omitempty"`
	Mode   uint32     `json:"mode"`
	Owner  *fileOwner `json:"owner,omitempty"`
}

func (*fileAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "file",
		Description: "Writes `content` to `path`, keeping the file's owner and mode unless `owner` or `mode` is set. " +
			"A symlink at `path` is refused unless `follow_symlinks = true`, which writes its target (the link stays). " +
			"The new file gets its owner and mode before it is renamed into place, so another user who can write the directory cannot redirect them to another file. " +
			"Native undo restores the previous content, owner and mode, or removes the file if it did not exist; " +
			"it first checks that the file is still as the step left it and fails with kind `conflict` naming what changed " +
			"otherwise (`runbook rollback -force` undoes anyway).",
		Inputs: []sdk.Attribute{
			{Name: "path", Type: cty.String, Required: true, Description: "File to write."},
			{Name: "content", Type: cty.String, Required: true, Description: "New content."},
			{Name: "mode", Type: cty.String, Description: "Octal permissions, e.g. \"0640\" (default: keep, or 0644 for a new file)."},
			{Name: "owner", Type: cty.String, Description: "\"user\" or \"user:group\" (names or ids; default: keep, or the plugin's user for a new file)."},
			{Name: "follow_symlinks", Type: cty.Bool, Description: "Write through a symlink at `path` to its target, keeping the target's owner and mode (default: refuse a symlink). Only for links no other user can change: whoever can replace the link chooses the file written."},
		},
		Outputs: []sdk.Attribute{
			{Name: "sha256", Type: cty.String, Description: "sha256 of the written content (sensitive when `content` is)."},
			{Name: "changed", Type: cty.Bool, Description: "Whether the content, mode or owner changed."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

type fileInputs struct {
	Path           string `cty:"path"`
	Content        string `cty:"content"`
	Mode           string `cty:"mode"`
	Owner          string `cty:"owner"`
	FollowSymlinks bool   `cty:"follow_symlinks"`
}

func (in *fileInputs) mode() (fs.FileMode, bool, error) {
	if in.Mode == "" {
		return 0, false, nil
	}
	m, err := strconv.ParseUint(in.Mode, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, false, sdk.Errorf(sdk.KindInvalid, false, "write the mode as an octal string such as \"0644\"", "mode: invalid %q", in.Mode)
	}
	return fs.FileMode(m), true, nil
}

var _ sdk.Planner = (*fileAction)(nil)

func (a *fileAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	p := req.Inputs.GetAttr("path")
	if !p.IsKnown() || p.IsNull() {
		return &sdk.PlanResult{Summary: "write a file (path known after apply)", Counts: map[string]int64{"write": 1}}, nil
	}
	path := p.AsString()
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &sdk.PlanResult{Summary: "create " + path, Counts: map[string]int64{"create": 1}}, nil
	}
	res := &sdk.PlanResult{Summary: "overwrite " + path, Counts: map[string]int64{"update": 1}}
	if err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if f := req.Inputs.GetAttr("follow_symlinks"); !f.IsKnown() || f.IsNull() || f.False() {
			res.Warnings = append(res.Warnings, path+" is a symlink: apply refuses it unless follow_symlinks = true")
		} else {
			res.Summary = "overwrite the target of " + path
		}
	}
	return res, nil
}

func (a *fileAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in fileInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	mode, setMode, err := in.mode()
	if err != nil {
		return nil, err
	}
	var owner *fileOwner
	if in.Owner != "" {
		if owner, err = parseOwner(in.Owner); err != nil {
			return nil, err
		}
	}
	target, err := resolvePath(in.Path, in.FollowSymlinks)
	if err != nil {
		return nil, err
	}
	undo := fileUndo{Path: in.Path}
	if target != in.Path {
		undo.Target = target
	}
	old, err := readCurrent(target)
	if err != nil {
		return nil, err
	}
	if old.exists {
		undo.Existed, undo.Content, undo.Mode, undo.Owner = true, old.content, old.mode, old.owner
		if !setMode {
			mode = fs.FileMode(old.mode)
		}
		switch {
		case owner == nil:
			owner = old.owner // keep it
		case old.owner != nil && owner.GID == -1:
			owner.GID = old.owner.GID // "user" alone keeps the group
		}
	} else if !setMode {
		mode = 0o644
	}
	// A resumed attempt must not record its own first write as the
	// previous content: the checkpoint holds the original undo state.
	if len(req.Checkpoint) > 0 {
		var prev fileUndo
		if json.Unmarshal(req.Checkpoint, &prev) == nil && prev.Path == in.Path {
			undo = prev
		}
	}
	t, err := prepareFile(target, []byte(in.Content), mode, owner)
	if err != nil {
		return nil, err
	}
	defer t.discard()
	undo.Left = &fileLeft{Mode: t.left.mode, Owner: t.left.owner}
	if !sensitive(req.Sensitive, "content") {
		undo.Left.SHA256 = sha256Hex([]byte(in.Content))
	}
	state, _ := json.Marshal(undo)
	if err := ev.Checkpoint(state); err != nil {
		return nil, err
	}
	// Against the original (undo), which a resumed attempt may have
	// overwritten already.
	changed := !undo.Existed || !bytes.Equal(undo.Content, []byte(in.Content)) || undo.Mode != t.left.mode || !sameOwner(undo.Owner, t.left.owner)
	res := &sdk.Result{UndoState: state}
	if err := t.commit(); err != nil {
		return res, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("wrote %s (%d bytes)", target, len(in.Content)))
	sum := cty.StringVal(sha256Hex([]byte(in.Content)))
	if sensitive(req.Sensitive, "content") {
		// The hash of a secret lets anyone check a guess: it is as
		// secret as the content.
		sum = sum.Mark(markSensitive)
	}
	res.Outputs = cty.ObjectVal(map[string]cty.Value{
		"sha256":  sum,
		"changed": cty.BoolVal(changed),
	})
	return res, nil
}

func (a *fileAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	if len(req.UndoState) == 0 {
		ev.Log(sdk.LevelInfo, "nothing was written; nothing to undo")
		return nil
	}
	var u fileUndo
	if err := json.Unmarshal(req.UndoState, &u); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "decode undo state: %v", err)
	}
	path := u.Path
	if u.Target != "" {
		path = u.Target
	}
	cur, err := readCurrent(path)
	var se *sdk.Error
	if err != nil && !(errors.As(err, &se) && se.Kind == sdk.KindConflict) {
		return err
	}
	if err == nil && u.asBefore(cur) {
		ev.Log(sdk.LevelInfo, path+" is as it was before the step; nothing to undo")
		return nil
	}
	if !req.Force {
		if err != nil {
			return err // it became a symlink or something else
		}
		if diffs := u.drift(cur, req.Inputs); len(diffs) > 0 {
			return sdk.Errorf(sdk.KindConflict, false,
				"look at the file; `runbook rollback -force` overwrites the later change",
				"%s changed since the step: %s", path, strings.Join(diffs, "; "))
		}
	}
	if !u.Existed {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fileErr("remove", path, err)
		}
		ev.Log(sdk.LevelInfo, "removed "+path)
		return nil
	}
	t, err := prepareFile(path, u.Content, fs.FileMode(u.Mode), u.Owner)
	if err != nil {
		return err
	}
	defer t.discard()
	if err := t.commit(); err != nil {
		return err
	}
	ev.Log(sdk.LevelInfo, "restored "+path)
	return nil
}

// asBefore reports whether the file is already as it was before the
// step (the step never got to rename, or an earlier undo finished).
func (u *fileUndo) asBefore(cur current) bool {
	if !u.Existed {
		return !cur.exists
	}
	return cur.exists && bytes.Equal(cur.content, u.Content) && cur.mode == u.Mode && sameOwner(cur.owner, u.Owner)
}

// drift lists what changed in the file since the step left it.
func (u *fileUndo) drift(cur current, inputs cty.Value) []string {
	l := u.Left
	if l == nil {
		return nil // undo state of an older version: nothing to compare with
	}
	if !cur.exists {
		return []string{"it was removed"}
	}
	var diffs []string
	switch {
	case l.SHA256 != "":
		if sha256Hex(cur.content) != l.SHA256 {
			diffs = append(diffs, "its content was changed")
		}
	default:
		want, ok := stringAttr(inputs, "content")
		if !ok {
			diffs = append(diffs, "its content cannot be compared (the step's content was sensitive and the undo did not get it)")
		} else if string(cur.content) != want {
			diffs = append(diffs, "its content was changed")
		}
	}
	if cur.mode != l.Mode {
		diffs = append(diffs, fmt.Sprintf("mode %04o is now %04o", l.Mode, cur.mode))
	}
	if !sameOwner(cur.owner, l.Owner) {
		diffs = append(diffs, fmt.Sprintf("owner %s is now %s", l.Owner, cur.owner))
	}
	return diffs
}

// stringAttr returns a known, non-null string attribute of an object.
func stringAttr(obj cty.Value, name string) (string, bool) {
	if obj == cty.NilVal || !obj.IsKnown() || obj.IsNull() || !obj.Type().IsObjectType() || !obj.Type().HasAttribute(name) {
		return "", false
	}
	v := obj.GetAttr(name)
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// sensitive reports whether the top-level input attr is among paths.
func sensitive(paths []cty.Path, attr string) bool {
	for _, p := range paths {
		if len(p) > 0 {
			if s, ok := p[0].(cty.GetAttrStep); ok && s.Name == attr {
				return true
			}
		}
	}
	return false
}

// resolvePath returns the file to write for path: path itself, or the
// target of a symlink when follow is set. A symlink is refused otherwise.
func resolvePath(path string, follow bool) (string, error) {
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return path, nil // a missing file is created; other errors show when reading
	}
	if !follow {
		return "", sdk.Errorf(sdk.KindInvalid, false,
			"set follow_symlinks = true to write the link's target, or point path at the file itself",
			"%s is a symlink", path)
	}
	t, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fileErr("resolve", path, err)
	}
	return t, nil
}

// current is a file as read before writing or undoing.
type current struct {
	exists  bool
	content []byte
	mode    uint32
	owner   *fileOwner
}

// readCurrent reads path without following a symlink at its last
// component; a symlink there (one swapped in since resolvePath) is a
// conflict.
func readCurrent(path string) (current, error) {
	f, err := openNoFollow(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return current{}, nil
	case isSymlinkErr(err):
		return current{}, sdk.Errorf(sdk.KindConflict, false, "", "%s is a symlink (it was not when the step started)", path)
	case err != nil:
		return current{}, fileErr("open", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return current{}, fileErr("stat", path, err)
	}
	if !st.Mode().IsRegular() {
		return current{}, sdk.Errorf(sdk.KindInvalid, false, "", "%s is not a regular file (%s)", path, st.Mode().Type())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return current{}, fileErr("read", path, err)
	}
	return current{exists: true, content: b, mode: uint32(st.Mode().Perm()), owner: ownerOf(st)}, nil
}

// tempFile is content written, owned and moded in a temporary file beside
// its destination, waiting to be renamed into place.
type tempFile struct {
	path, dest string
	left       current // mode and owner as set
}

// prepareFile writes data to a temporary file in dest's directory and
// sets its owner (nil: leave) and mode through the open descriptor, so
// nothing path-based is left to do after the rename.
func prepareFile(dest string, data []byte, mode fs.FileMode, owner *fileOwner) (*tempFile, error) {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".runbook-*")
	if err != nil {
		return nil, fileErr("create", dest, err)
	}
	t := &tempFile{path: f.Name(), dest: dest}
	fail := func(op string, err error) (*tempFile, error) {
		f.Close()
		t.discard()
		return nil, fileErr(op, dest, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if owner != nil {
		st, err := f.Stat()
		if err != nil {
			return fail("stat", err)
		}
		// Only when it changes something: a user without the privilege
		// can keep an owner, not give one away.
		if cur := ownerOf(st); cur == nil || *cur != *owner {
			if err := f.Chown(owner.UID, owner.GID); err != nil {
				return fail("chown", err)
			}
		}
	}
	// After the chown, which clears set-id bits.
	if err := f.Chmod(mode); err != nil {
		return fail("chmod", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail("stat", err)
	}
	t.left = current{exists: true, mode: uint32(st.Mode().Perm()), owner: ownerOf(st)}
	if err := f.Close(); err != nil {
		t.discard()
		return nil, fileErr("close", dest, err)
	}
	return t, nil
}

// commit renames the temporary file into place. rename replaces whatever
// is at dest (a symlink included) without following it.
func (t *tempFile) commit() error {
	if err := os.Rename(t.path, t.dest); err != nil {
		return fileErr("rename", t.dest, err)
	}
	t.path = ""
	return nil
}

// discard removes the temporary file unless it was committed.
func (t *tempFile) discard() {
	if t.path != "" {
		os.Remove(t.path)
		t.path = ""
	}
}

// parseOwner resolves "user" or "user:group" (names or ids).
func parseOwner(owner string) (*fileOwner, error) {
	if !ownersSupported {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "", "owner: not supported on this operating system")
	}
	u, g, _ := strings.Cut(owner, ":")
	o := &fileOwner{UID: -1, GID: -1}
	if u != "" {
		id, err := lookupID(u, true)
		if err != nil {
			return nil, err
		}
		o.UID = id
	}
	if g != "" {
		id, err := lookupID(g, false)
		if err != nil {
			return nil, err
		}
		o.GID = id
	}
	return o, nil
}

func lookupID(name string, isUser bool) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	var sid string
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, sdk.Errorf(sdk.KindInvalid, false, "", "owner: %v", err)
		}
		sid = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, sdk.Errorf(sdk.KindInvalid, false, "", "owner: %v", err)
		}
		sid = g.Gid
	}
	id, _ := strconv.Atoi(sid)
	return id, nil
}

func fileErr(op, path string, err error) error {
	kind := sdk.KindInternal
	switch {
	case errors.Is(err, fs.ErrPermission):
		kind = sdk.KindAuth
	case errors.Is(err, fs.ErrNotExist):
		kind = sdk.KindNotFound
	}
	return &sdk.Error{Kind: kind, Err: fmt.Errorf("%s %s: %w", op, path, err)}
}

// markSensitive is the cty mark of sensitive values: marked outputs are
// sealed and redacted by the engine (the wire carries the marks).
const markSensitive = "sensitive"

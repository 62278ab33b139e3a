package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
type fileAction struct{}

var _ sdk.Undoer = (*fileAction)(nil)

// fileUndo is the undo state of core.file.
type fileUndo struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Content []byte `json:"content,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
}

func (*fileAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "file",
		Description: "Writes `content` to `path`. Native undo restores the previous content and mode, or removes the file if it did not exist.",
		Inputs: []sdk.Attribute{
			{Name: "path", Type: cty.String, Required: true, Description: "File to write."},
			{Name: "content", Type: cty.String, Required: true, Description: "New content."},
			{Name: "mode", Type: cty.String, Description: "Octal permissions, e.g. \"0640\" (default: keep, or 0644 for a new file)."},
			{Name: "owner", Type: cty.String, Description: "\"user\" or \"user:group\" (names or ids)."},
		},
		Outputs: []sdk.Attribute{
			{Name: "sha256", Type: cty.String, Description: "sha256 of the written content."},
			{Name: "changed", Type: cty.Bool, Description: "Whether the content or mode changed."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

type fileInputs struct {
	Path    string `cty:"path"`
	Content string `cty:"content"`
	Mode    string `cty:"mode"`
	Owner   string `cty:"owner"`
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
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return &sdk.PlanResult{Summary: "create " + path, Counts: map[string]int64{"create": 1}}, nil
	}
	return &sdk.PlanResult{Summary: "overwrite " + path, Counts: map[string]int64{"update": 1}}, nil
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
	undo := fileUndo{Path: in.Path}
	old, err := os.ReadFile(in.Path)
	switch {
	case err == nil:
		st, err := os.Stat(in.Path)
		if err != nil {
			return nil, fileErr("stat", in.Path, err)
		}
		undo.Existed, undo.Content, undo.Mode = true, old, uint32(st.Mode().Perm())
		if !setMode {
			mode = st.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
		if !setMode {
			mode = 0o644
		}
	default:
		return nil, fileErr("read", in.Path, err)
	}
	// A resumed attempt must not record its own first write as the
	// previous content: the checkpoint holds the original undo state.
	if len(req.Checkpoint) > 0 {
		var prev fileUndo
		if json.Unmarshal(req.Checkpoint, &prev) == nil && prev.Path == in.Path {
			undo = prev
		}
	}
	state, _ := json.Marshal(undo)
	if err := ev.Checkpoint(state); err != nil {
		return nil, err
	}
	changed := !undo.Existed || string(old) != in.Content || fs.FileMode(undo.Mode) != mode
	res := &sdk.Result{UndoState: state}
	if err := writeFileAtomic(in.Path, []byte(in.Content), mode); err != nil {
		return res, err
	}
	if in.Owner != "" {
		if err := chown(in.Path, in.Owner); err != nil {
			return res, err
		}
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("wrote %s (%d bytes)", in.Path, len(in.Content)))
	res.Outputs = cty.ObjectVal(map[string]cty.Value{
		"sha256":  cty.StringVal(sha256Hex([]byte(in.Content))),
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
	if !u.Existed {
		if err := os.Remove(u.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fileErr("remove", u.Path, err)
		}
		ev.Log(sdk.LevelInfo, "removed "+u.Path)
		return nil
	}
	if err := writeFileAtomic(u.Path, u.Content, fs.FileMode(u.Mode)); err != nil {
		return err
	}
	ev.Log(sdk.LevelInfo, "restored "+u.Path)
	return nil
}

// writeFileAtomic writes through a temporary file in the same directory and
// renames it into place, so a crash never leaves a half-written file.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".runbook-*")
	if err != nil {
		return fileErr("create", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fileErr("write", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fileErr("chmod", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fileErr("sync", path, err)
	}
	if err := f.Close(); err != nil {
		return fileErr("close", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fileErr("rename", path, err)
	}
	return nil
}

func chown(path, owner string) error {
	u, g, _ := strings.Cut(owner, ":")
	uid, gid := -1, -1
	if u != "" {
		id, err := lookupID(u, true)
		if err != nil {
			return err
		}
		uid = id
	}
	if g != "" {
		id, err := lookupID(g, false)
		if err != nil {
			return err
		}
		gid = id
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fileErr("chown", path, err)
	}
	return nil
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

package core

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// TestFileUndoDrift: the undo refuses to destroy what changed after the
// step, unless forced.
func TestFileUndoDrift(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		tests := []struct {
			name   string
			before *string // nil: no file before the step
			change func(path string) error
			want   string // in the conflict
		}{
			{"content of a new file", nil, func(p string) error { return os.WriteFile(p, []byte("later"), 0o644) }, "its content was changed"},
			{"content of an overwritten file", ptr("before"), func(p string) error { return os.WriteFile(p, []byte("later"), 0o644) }, "its content was changed"},
			{"mode", ptr("before"), func(p string) error { return os.Chmod(p, 0o600) }, "mode 0644 is now 0600"},
			{"removed", ptr("before"), os.Remove, "it was removed"},
			{"replaced by a symlink", ptr("before"), func(p string) error {
				os.Remove(p)
				return os.Symlink("/etc/hostname", p)
			}, "is a symlink"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "conf")
				if tc.before != nil {
					if err := os.WriteFile(path, []byte(*tc.before), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				in := sdktest.Object(map[string]any{"path": path, "content": "step"})
				res, _ := sdktest.MustApply(t, p, "file", in)
				if err := tc.change(path); err != nil {
					t.Fatal(err)
				}
				keep, _ := os.Lstat(path)
				req := &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState}
				_, err := sdktest.Undo(t, p, "file", req)
				sdktest.AssertKind(t, err, sdk.KindConflict)
				if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("conflict = %v, want the path and %q", err, tc.want)
				}
				if now, _ := os.Lstat(path); (keep == nil) != (now == nil) || keep != nil && (keep.Mode() != now.Mode() || keep.ModTime() != now.ModTime()) {
					t.Fatalf("the refused undo touched %s", path)
				}
				req.Force = true
				if _, err := sdktest.Undo(t, p, "file", req); err != nil {
					t.Fatalf("forced undo: %v", err)
				}
				b, err := os.ReadFile(path)
				if tc.before == nil {
					if !os.IsNotExist(err) {
						t.Fatalf("forced undo left the new file: %q, %v", b, err)
					}
					return
				}
				if st, _ := os.Lstat(path); string(b) != *tc.before || st.Mode() != 0o644 {
					t.Fatalf("forced undo left %q %v, want %q -rw-r--r--", b, st.Mode(), *tc.before)
				}
			})
		}
	})
}

func ptr(s string) *string { return &s }

// TestFileUndoIdempotent: an undo that finds the file as it was before
// the step (an earlier undo finished, or the step never renamed) succeeds.
func TestFileUndoIdempotent(t *testing.T) {
	p := sdktest.Local(t, New())
	path := filepath.Join(t.TempDir(), "conf")
	os.WriteFile(path, []byte("before"), 0o644)
	in := sdktest.Object(map[string]any{"path": path, "content": "step"})
	res, _ := sdktest.MustApply(t, p, "file", in)
	req := &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState}
	for i := 0; i < 2; i++ {
		if _, err := sdktest.Undo(t, p, "file", req); err != nil {
			t.Fatalf("undo %d: %v", i+1, err)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "before" {
		t.Fatalf("content = %q", b)
	}
}

// TestFileUndoSensitive: with a sensitive content the undo state holds no
// hash of it; the drift check compares with the undo's inputs.
func TestFileUndoSensitive(t *testing.T) {
	p := sdktest.Local(t, New())
	path := filepath.Join(t.TempDir(), "secret")
	in := sdktest.Object(map[string]any{"path": path, "content": "hunter2"})
	res, _, err := sdktest.ApplyRequest(t, p, "file", &sdk.ApplyRequest{Inputs: in, Sensitive: []cty.Path{cty.GetAttrPath("content")}})
	if err != nil {
		t.Fatal(err)
	}
	var u fileUndo
	if err := json.Unmarshal(res.UndoState, &u); err != nil || u.Left == nil || u.Left.SHA256 != "" {
		t.Fatalf("undo state %s: want no sha256 of a sensitive content (%v)", res.UndoState, err)
	}
	if sum := res.Outputs.GetAttr("sha256"); !sum.HasMark(markSensitive) {
		t.Errorf("the sha256 output of a sensitive content is not sensitive: %#v", sum)
	}
	os.WriteFile(path, []byte("hunter3"), 0o644)
	_, err = sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState})
	if sdktest.AssertKind(t, err, sdk.KindConflict); !strings.Contains(err.Error(), "content was changed") || strings.Contains(err.Error(), "hunter") {
		t.Errorf("err = %v", err)
	}
	os.WriteFile(path, []byte("hunter2"), 0o644)
	if _, err := sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("undo left the file: %v", err)
	}
}

// TestFileSymlink: a symlink at path is refused unless follow_symlinks is
// set; then its target is written (the link stays) and restored on undo.
func TestFileSymlink(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		dir := t.TempDir()
		target, link := filepath.Join(dir, "real.conf"), filepath.Join(dir, "link.conf")
		os.WriteFile(target, []byte("before"), 0o640)
		if err := os.Symlink("real.conf", link); err != nil {
			t.Fatal(err)
		}
		_, _, err := sdktest.Apply(t, p, "file", sdktest.Object(map[string]any{"path": link, "content": "after"}))
		if sdktest.AssertKind(t, err, sdk.KindInvalid); !strings.Contains(err.Error(), "symlink") {
			t.Errorf("err = %v", err)
		}
		plan, err := sdktest.Plan(t, p, "file", sdktest.Object(map[string]any{"path": link, "content": "after"}))
		if err != nil || len(plan.Warnings) != 1 {
			t.Errorf("plan = %+v, %v: want a warning about the symlink", plan, err)
		}
		in := sdktest.Object(map[string]any{"path": link, "content": "after", "follow_symlinks": true})
		res, _ := sdktest.MustApply(t, p, "file", in)
		assertFile(t, link, "after", 0o640, true)
		if _, err := sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState}); err != nil {
			t.Fatal(err)
		}
		assertFile(t, link, "before", 0o640, true)
	})
}

// assertFile checks path's content and mode, and whether it is a symlink.
func assertFile(t *testing.T, path, content string, mode os.FileMode, link bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	lst, _ := os.Lstat(path)
	if err != nil || string(b) != content || st.Mode().Perm() != mode || (lst.Mode()&os.ModeSymlink != 0) != link {
		t.Fatalf("%s = %q %v (lstat %v), %v; want %q %v symlink=%v", path, b, st.Mode(), lst.Mode(), err, content, mode, link)
	}
}

package swift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/sdk"
)

// emptyMD5 is the ETag a DLO manifest lists with.
const emptyMD5 = "d41d8cd98f00b204e9800998ecf8427e"

// Undo deletes what the copy created, if it is unchanged: every object
// must still have the ETag the copy left, and a container it created must
// hold nothing else; otherwise it fails with conflict (naming what
// changed) without deleting anything, unless forced. Objects others wrote
// are never deleted, forced or not.
func (copyAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	raw := req.UndoState
	if len(raw) == 0 {
		raw = req.Checkpoint
	}
	if len(raw) == 0 {
		return nil
	}
	var st copyState
	if err := json.Unmarshal(raw, &st); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "", "undo state: %v", err)
	}
	dst, err := openTarget(ctx, req.Inputs)
	if err != nil {
		return err
	}
	if dst.id() != st.Target {
		return sdk.Errorf(sdk.KindConflict, false, "give the step's target again", "the target is %s, the step copied to %s", dst.id(), st.Target)
	}
	var u undoer
	switch t := dst.(type) {
	case *swiftTarget:
		u = &swiftUndo{t: t}
	case *localTarget:
		u = &localUndo{t: t}
	}
	var drift []string
	del := map[string][]string{}
	conts := make([]string, 0, len(st.Objects))
	for cont := range st.Objects {
		conts = append(conts, cont)
	}
	sort.Strings(conts)
	for _, cont := range conts {
		for name, etag := range st.Objects[cont] {
			cur, ok, err := u.current(ctx, cont, name)
			if err != nil {
				return err
			}
			switch {
			case !ok: // gone already
			case cur == etag:
				del[cont] = append(del[cont], name)
			default:
				drift = append(drift, fmt.Sprintf("%s/%s (ETag %s, the copy left %s)", cont, name, cur, etag))
				if req.Force {
					del[cont] = append(del[cont], name)
				}
			}
		}
	}
	var foreign []string
	for _, cont := range st.Containers {
		others, err := u.others(ctx, cont, st.Objects[cont])
		if err != nil {
			return err
		}
		if others > 0 {
			foreign = append(foreign, cont)
			drift = append(drift, fmt.Sprintf("container %s holds %s the copy did not write", cont, plural(others, "object")))
		}
	}
	sort.Strings(drift)
	if len(drift) > 0 && !req.Force {
		shown := drift
		if len(shown) > 10 {
			shown = append(shown[:10:10], fmt.Sprintf("and %d more", len(drift)-10))
		}
		return sdk.Errorf(sdk.KindConflict, false, "look at what changed; `runbook rollback -force` deletes the copied objects anyway (never others' objects)",
			"changed since the copy: %s", strings.Join(shown, "; "))
	}
	var n int64
	for _, cont := range conts {
		sort.Strings(del[cont])
		k, err := u.delete(ctx, cont, del[cont], ev)
		n += k
		if err != nil {
			return err
		}
	}
	var kept []string
	for i := len(st.Containers) - 1; i >= 0; i-- {
		cont := st.Containers[i]
		if contains(foreign, cont) {
			kept = append(kept, cont)
			continue
		}
		if err := u.deleteContainer(ctx, cont); err != nil {
			return err
		}
	}
	msg := fmt.Sprintf("undo: deleted %s and %s", plural(n, "object"), plural(int64(len(st.Containers)-len(kept)), "container"))
	if len(kept) > 0 {
		msg += "; kept " + strings.Join(kept, ", ") + " (others' objects in them)"
	}
	ev.Log(sdk.LevelInfo, msg)
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

type undoer interface {
	// current is the object's ETag now, and whether it exists.
	current(ctx context.Context, cont, name string) (string, bool, error)
	// others counts the container's objects not in mine.
	others(ctx context.Context, cont string, mine map[string]string) (int64, error)
	delete(ctx context.Context, cont string, names []string, ev sdk.Events) (int64, error)
	deleteContainer(ctx context.Context, cont string) error
}

type swiftUndo struct {
	t      *swiftTarget
	loaded map[string]bool
}

func (u *swiftUndo) current(ctx context.Context, cont, name string) (string, bool, error) {
	if u.loaded == nil {
		u.loaded = map[string]bool{}
	}
	if !u.loaded[cont] {
		u.loaded[cont] = true
		if err := u.t.load(ctx, cont); err != nil && kindOf(err) != sdk.KindNotFound {
			return "", false, err
		}
	}
	e, ok := u.t.lookup(cont, name)
	if ok && e.bytes == 0 && e.hash == emptyMD5 {
		// Perhaps a DLO manifest: its own ETag is the segments'.
		_, h, err := u.t.c.Object(ctx, cont, name)
		if errors.Is(err, swift.ObjectNotFound) {
			return "", false, nil
		}
		if err != nil {
			return "", false, classify(err, "head "+cont+"/"+name)
		}
		return unquote(h["Etag"]), true, nil
	}
	return e.hash, ok, nil
}

func (u *swiftUndo) others(ctx context.Context, cont string, mine map[string]string) (int64, error) {
	var n int64
	err := walkObjects(ctx, u.t.c, cont, &swift.ObjectsOpts{}, func(o swift.Object) error {
		if _, ok := mine[o.Name]; !ok {
			n++
		}
		return nil
	})
	if errors.Is(err, swift.ContainerNotFound) {
		return 0, nil
	}
	return n, classify(err, "list "+cont)
}

func (u *swiftUndo) delete(ctx context.Context, cont string, names []string, ev sdk.Events) (int64, error) {
	return bulkDelete(ctx, u.t.c, cont, names, ev)
}

func (u *swiftUndo) deleteContainer(ctx context.Context, cont string) error {
	err := u.t.c.ContainerDelete(ctx, cont)
	if err == nil || errors.Is(err, swift.ContainerNotFound) {
		return nil
	}
	return classify(err, "delete container "+cont)
}

type localUndo struct{ t *localTarget }

func (u *localUndo) current(ctx context.Context, cont, name string) (string, bool, error) {
	p, err := u.t.path(cont, name)
	if err != nil {
		return "", false, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", false, nil
	}
	if st.IsDir() {
		return "", false, nil // a pseudo-directory: removed with the container if empty
	}
	if _, ok := u.t.idx[cont]; !ok {
		if err := u.t.load(ctx, cont); err != nil {
			return "", false, err
		}
	}
	sum, err := fileMD5(p)
	if err != nil {
		return "", false, sdk.Errorf(sdk.KindConflict, false, "", "read %s: %v", p, err)
	}
	e := u.t.idx[cont][name]
	if e.MD5 == sum {
		return e.ETag, true, nil
	}
	return "md5:" + sum, true, nil
}

func (u *localUndo) others(_ context.Context, cont string, mine map[string]string) (int64, error) {
	d, err := u.t.containerDir(cont)
	if err != nil {
		return 0, err
	}
	var n int64
	err = filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(d, p)
		if _, ok := mine[filepath.ToSlash(rel)]; !ok {
			n++
		}
		return nil
	})
	return n, err
}

func (u *localUndo) delete(_ context.Context, cont string, names []string, _ sdk.Events) (int64, error) {
	var n int64
	for _, name := range names {
		p, err := u.t.path(cont, name)
		if err != nil {
			return n, err
		}
		if err := os.Remove(p); err == nil {
			n++
		}
		u.t.mu.Lock()
		delete(u.t.idx[cont], name)
		u.t.dirty[cont] = true
		u.t.mu.Unlock()
	}
	return n, u.t.finish(cont)
}

func (u *localUndo) deleteContainer(_ context.Context, cont string) error {
	d, err := u.t.containerDir(cont)
	if err != nil {
		return err
	}
	// Only empty directories go: remove them bottom-up.
	var dirs []string
	_ = filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
		if err == nil && de.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
	_ = os.Remove(u.t.indexPath(cont))
	return nil
}

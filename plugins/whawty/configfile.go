package whawty

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/runbookdev/runbook/sdk"
)

// configFile is a config as read from its location.
type configFile struct {
	Loc location
	FS  fileSystem
	// Target is the file the config is: Loc.Path, or what a symlink there
	// points to (edits go to the target; the link stays).
	Target string
	Raw    []byte
	Entry  entry // the target's
	Cfg    *storeConfig
}

// maxLinks bounds the symlinks followed to a config.
const maxLinks = 40

// resolveLink follows symlinks from p and returns the path of the file
// they lead to and its entry.
func resolveLink(fsys fileSystem, p string) (string, entry, error) {
	for range maxLinks {
		e, err := fsys.Stat(p)
		if err != nil {
			return "", entry{}, err
		}
		if e.Mode.Type()&fs.ModeSymlink == 0 {
			return p, e, nil
		}
		t, err := fsys.Readlink(p)
		if err != nil {
			return "", entry{}, err
		}
		if !strings.HasPrefix(t, "/") {
			t = path.Join(path.Dir(p), t)
		}
		p = path.Clean(t)
	}
	return "", entry{}, fmt.Errorf("%s: more than %d symlinks", p, maxLinks)
}

// loadConfig reads and parses the config at loc.
func loadConfig(ctx context.Context, c *conns, loc location) (*configFile, error) {
	fsys, err := c.fs(ctx, loc)
	if err != nil {
		return nil, err
	}
	target, e, err := resolveLink(fsys, loc.Path)
	if err != nil {
		return nil, fsError("stat config", loc, err)
	}
	raw, err := fsys.ReadFile(target)
	if err != nil {
		return nil, fsError("read config", loc, err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, configInvalid(loc, err)
	}
	return &configFile{Loc: loc, FS: fsys, Target: target, Raw: raw, Entry: e, Cfg: cfg}, nil
}

// storeLoc is the store directory: the explicit store input, or the
// config's basedir on the config's host.
func (cf *configFile) storeLoc(explicit string) (location, error) {
	if explicit != "" {
		return decodeLoc("store", explicit)
	}
	l := cf.Loc
	l.Path = cf.Cfg.BaseDir
	if !strings.HasPrefix(l.Path, "/") {
		return location{}, sdk.Errorf(sdk.KindConflict, false, "make basedir absolute or set the store input",
			"config %s: basedir %q is not absolute", cf.Loc, cf.Cfg.BaseDir)
	}
	return l, nil
}

// write replaces the config atomically, keeping its mode and owner.
func (cf *configFile) write(data []byte) error {
	return writeConfigFile(cf.FS, cf.Loc, cf.Target, cf.Entry, data)
}

// writeConfigFile replaces target (the file the config at loc is, after
// symlinks) atomically through a temp file beside it, with e's mode and
// owner: a symlink at loc stays a symlink. A config others may write is
// refused: whoever can write it can change the keys.
func writeConfigFile(fsys fileSystem, loc location, target string, e entry, data []byte) error {
	if !e.Regular {
		return sdk.Errorf(sdk.KindConflict, false, "make the config a regular file (or a symlink to one)",
			"config %s (%s) is not a regular file", loc, target)
	}
	if perm := e.Mode.Perm(); perm&0o022 != 0 {
		return sdk.Errorf(sdk.KindConflict, false, "chmod the config 0400 or 0600 (owned by root or the whawty user), then retry",
			"config %s (%s) is writable by group or others (mode %04o); not writing hmac keys into it", loc, target, perm)
	}
	if err := fsys.WriteAtomic(target, path.Dir(target), data, e.Mode.Perm(), e.UID, e.GID); err != nil {
		return fsError("write config", loc, err)
	}
	return nil
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// configUndo is the undo state of a config edit. It holds the file as it
// was with every hmackey replaced by a placeholder: at undo time the keys
// are taken from the file as it is then. Keys of sets the edit removed are
// the only secrets kept here.
type configUndo struct {
	Location string `json:"location"`
	// Changed is false when the edit was a no-op.
	Changed bool `json:"changed"`
	// Before is the redacted original; BeforeSHA256 the original's digest.
	Before       []byte `json:"before,omitempty"`
	BeforeSHA256 string `json:"before_sha256"`
	// Redacted lists, in order, which set each placeholder belongs to.
	Redacted []uint64 `json:"redacted,omitempty"`
	// Keys holds hmackey texts of sets missing from the written file.
	Keys        map[string]string `json:"keys,omitempty"`
	AfterSHA256 string            `json:"after_sha256"`
}

const placeholderFmt = "\x00runbook-hmackey-%d\x00"

// hmackeyNodes returns, per set id, the hmackey scalar node of src's sets.
func hmackeyNodes(src []byte) ([]uint64, []*yaml.Node) {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) != 1 {
		return nil, nil
	}
	params := value(doc.Content[0], "params")
	if params == nil {
		return nil, nil
	}
	var ids []uint64
	var nodes []*yaml.Node
	for _, item := range params.Content {
		idn := value(item, "id")
		sa := value(item, "scryptauth")
		if idn == nil || sa == nil {
			continue
		}
		id, err := strconv.ParseUint(idn.Value, 10, 64)
		k := value(sa, "hmackey")
		if err != nil || k == nil || k.Value == "" {
			continue
		}
		ids = append(ids, id)
		nodes = append(nodes, k)
	}
	return ids, nodes
}

// newConfigUndo builds the undo state for replacing before with after.
func newConfigUndo(loc location, before, after []byte) (*configUndo, error) {
	u := &configUndo{Location: loc.String(), Changed: !bytes.Equal(before, after),
		BeforeSHA256: sum(before), AfterSHA256: sum(after)}
	if !u.Changed {
		return u, nil
	}
	ids, nodes := hmackeyNodes(before)
	lines := bytes.SplitAfter(before, []byte("\n"))
	for i, n := range nodes {
		if n.Line < 1 || n.Line > len(lines) {
			return nil, fmt.Errorf("hmackey of set %d: line %d out of range", ids[i], n.Line)
		}
		l := lines[n.Line-1]
		at := bytes.Index(l, []byte(n.Value))
		if at < 0 {
			return nil, fmt.Errorf("hmackey of set %d not found verbatim on line %d", ids[i], n.Line)
		}
		ph := fmt.Sprintf(placeholderFmt, i)
		lines[n.Line-1] = append(append(append([]byte{}, l[:at]...), ph...), l[at+len(n.Value):]...)
		u.Redacted = append(u.Redacted, ids[i])
	}
	u.Before = bytes.Join(lines, nil)
	// Keys the new file no longer has must travel in the undo state.
	afterIDs, afterNodes := hmackeyNodes(after)
	have := map[uint64]bool{}
	for i := range afterIDs {
		have[afterIDs[i]] = afterNodes[i] != nil
	}
	for i, id := range ids {
		if !have[id] {
			if u.Keys == nil {
				u.Keys = map[string]string{}
			}
			u.Keys[strconv.FormatUint(id, 10)] = nodes[i].Value
		}
	}
	if _, err := u.restore(after); err != nil {
		return nil, fmt.Errorf("undo state self-check: %w", err)
	}
	return u, nil
}

// restore rebuilds the original file, taking keys from current.
func (u *configUndo) restore(current []byte) ([]byte, error) {
	ids, nodes := hmackeyNodes(current)
	keys := map[uint64]string{}
	for i, id := range ids {
		keys[id] = nodes[i].Value
	}
	for k, v := range u.Keys {
		id, _ := strconv.ParseUint(k, 10, 64)
		keys[id] = v
	}
	out := u.Before
	for i, id := range u.Redacted {
		k, ok := keys[id]
		if !ok {
			return nil, fmt.Errorf("hmackey of parameter-set %d is no longer in the file", id)
		}
		out = bytes.Replace(out, []byte(fmt.Sprintf(placeholderFmt, i)), []byte(k), 1)
	}
	if sum(out) != u.BeforeSHA256 {
		return nil, fmt.Errorf("rebuilt config does not match the original (sha256 differs)")
	}
	return out, nil
}

func (u *configUndo) marshal() []byte { b, _ := json.Marshal(u); return b }

// undoConfigEdit restores the config an edit changed. It refuses when the
// file changed since the edit, and does nothing when it is already back.
// It never drops a parameter-set that a hash in the store (or in a peer's
// store) uses: such a set is kept with the old default and the undo is
// reported as partial (keepUsedSets), unless force.
func undoConfigEdit(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	state := req.UndoState
	if len(state) == 0 {
		ev.Log(sdk.LevelInfo, "nothing to undo: the edit did not happen")
		return nil
	}
	var u configUndo
	if err := json.Unmarshal(state, &u); err != nil {
		return sdk.Errorf(sdk.KindInternal, false, "restore the config by hand from a backup", "bad undo state: %v", err)
	}
	if !u.Changed {
		ev.Log(sdk.LevelInfo, "nothing to undo: the edit changed nothing")
		return nil
	}
	loc, err := parseLocation(u.Location)
	if err != nil {
		return err
	}
	c := newConns(sshOptionsOf(req.Inputs))
	defer c.Close()
	fsys, err := c.fs(ctx, loc)
	if err != nil {
		return err
	}
	target, e, err := resolveLink(fsys, loc.Path)
	if err != nil {
		return fsError("stat config", loc, err)
	}
	cur, err := fsys.ReadFile(target)
	if err != nil {
		return fsError("read config", loc, err)
	}
	peers := peerConfigsOf(req.Inputs)
	switch sum(cur) {
	case u.BeforeSHA256:
		ev.Log(sdk.LevelInfo, fmt.Sprintf("config %s is already restored", loc))
		return nil
	case u.AfterSHA256:
	default:
		if u.partlyUndone(ctx, c, loc, cur, peers) {
			ev.Log(sdk.LevelInfo, fmt.Sprintf("config %s is already restored as far as it can be (the sets in use are kept)", loc))
			return nil
		}
		return sdk.Errorf(sdk.KindConflict, false,
			"the config was edited after this step; restore it by hand (compare with your backup) or undo the later edits first",
			"config %s changed since this step wrote it; not restoring", loc)
	}
	orig, err := u.restore(cur)
	if err != nil {
		return sdk.Errorf(sdk.KindConflict, false, "restore the config by hand", "config %s: %v", loc, err)
	}
	data, partial, err := keepUsedSets(ctx, c, loc, orig, cur, peers, req.Force)
	if err != nil {
		return err
	}
	if err := writeConfigFile(fsys, loc, target, e, data); err != nil {
		return err
	}
	if partial != "" {
		ev.Log(sdk.LevelWarn, partial)
		return nil
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("restored config %s", loc))
	return nil
}

// partlyUndone says whether cur is what a partial undo of this edit
// writes (a retried rollback finds it so).
func (u *configUndo) partlyUndone(ctx context.Context, c *conns, loc location, cur []byte, peers []string) bool {
	orig, err := u.restore(cur)
	if err != nil {
		return false
	}
	data, partial, err := keepUsedSets(ctx, c, loc, orig, cur, peers, false)
	return err == nil && partial != "" && bytes.Equal(data, cur)
}

package whawty

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/runbookdev/runbook/sdk"
)

// Sync operation kinds.
const (
	opAdd    = "add"
	opUpdate = "update"
	opDelete = "delete"
)

// syncOp is one change to the destination store.
type syncOp struct {
	Kind string
	Name string
	Data []byte // new content (add, update)
}

// syncPlan is what a sync would do, in the order it does it.
type syncPlan struct {
	Src, Dst     location
	SrcFS, DstFS fileSystem
	Ops          []syncOp
	Unchanged    int64
	SourceFiles  int64
	Warnings     []string
	// dst is the destination before the sync (contents not parsed).
	dst *storeScan
	// dstOther are the destination's entries that are not user files.
	dstOther     map[string]entry
	dstHasTmp    bool
	dstOwner     [2]int // uid, gid of the destination directory, for new files
	counts       map[string]int64
	bytesToWrite int64
	// skippedSources are source names not mirrored (empty placeholders).
	skippedSources map[string]bool
	// prior is the undo state an interrupted earlier attempt journaled.
	prior *syncUndo
	// pre holds the files staged while reading (nil in Plan).
	pre *prestager
}

// dstEntry is the destination's entry for name before the sync.
func (p *syncPlan) dstEntry(name string) (entry, bool) {
	if f := p.dst.Files[name]; f != nil {
		return f.Entry, true
	}
	e, ok := p.dstOther[name]
	return e, ok
}

// ownerOf is the owner a destination file must have: the destination
// directory's (the whawty user), when known; else the file's own.
func ownerOf(dirOwner [2]int, e entry) (uid, gid int) {
	if dirOwner[0] >= 0 && dirOwner[1] >= 0 {
		return dirOwner[0], dirOwner[1]
	}
	return e.UID, e.GID
}

// foreignOwner says whether a destination file is owned by another user or
// group than the destination directory (whawty, running as the directory's
// owner, may then be unable to read it).
func foreignOwner(dirOwner [2]int, e entry) bool {
	return dirOwner[0] >= 0 && e.UID >= 0 && !e.Lazy && (e.UID != dirOwner[0] || e.GID != dirOwner[1])
}

// dstContent is the content of the destination's user file name before
// the sync (ok=false for other entries).
func (p *syncPlan) dstContent(name string) ([]byte, bool) {
	if f := p.dst.Files[name]; f != nil {
		return f.Content, true
	}
	return nil, false
}

// refuseSource are source problems that make the source unfit to mirror:
// copying them would make the slave fail whawty's own check. A file whawty
// only warns about (an unparseable hash: that user cannot log in) is
// mirrored like whawty's own rsync would, with a warning.
var refuseSource = map[string]bool{
	probBothUserAdmin: true, probNoAdmin: true, probDirectory: true,
}

// warnSource are source problems a sync mirrors but reports.
var warnSource = map[string]bool{
	probUnparseable: true, probLegacy: true, probInvalidUsername: true,
}

// openSide connects to loc's host and scans the store there.
func openSide(ctx context.Context, c *conns, loc location, o scanOpts) (fileSystem, *storeScan, error) {
	fsys, err := c.fs(ctx, loc)
	if err != nil {
		return nil, nil, err
	}
	s, err := scanStoreWith(ctx, fsys, loc.Path, o)
	return fsys, s, err
}

// planSync reads both stores and computes the operations. With pre (Apply
// only), files that differ are staged while the source is still being read;
// the caller discards what it does not use.
func planSync(ctx context.Context, c *conns, in syncInputs, pre *prestager) (*syncPlan, error) {
	src, err := decodeLoc("source", in.Source)
	if err != nil {
		return nil, err
	}
	dst, err := decodeLoc("destination", in.Destination)
	if err != nil {
		return nil, err
	}
	var dstCfg *configFile
	if in.DestinationConfig != "" {
		cl, err := decodeLoc("destination_config", in.DestinationConfig)
		if err != nil {
			return nil, err
		}
		if dstCfg, err = loadConfig(ctx, c, cl); err != nil {
			return nil, err
		}
	}
	if src.String() == dst.String() {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "name two different stores", "source and destination are the same store %s", src)
	}
	p := &syncPlan{Src: src, Dst: dst, dstOwner: [2]int{-1, -1}, counts: map[string]int64{},
		skippedSources: map[string]bool{}, dstOther: map[string]entry{}, pre: pre}
	// Connect to and read both stores at once: they are usually on
	// different hosts, and locally the two scans use both cores. The
	// destination is compared byte for byte, so its hash lines are not
	// parsed; only the source's contents matter, not its modes.
	var ds *storeScan
	var dsErr error
	dsDone := make(chan struct{})
	go func() {
		defer close(dsDone)
		p.DstFS, ds, dsErr = openSide(ctx, c, dst, scanOpts{raw: true})
		if dsErr != nil {
			pre.setDestination(nil, "", nil, p.dstOwner)
			return
		}
		if de, err := p.DstFS.Stat(dst.Path); err == nil {
			p.dstOwner = [2]int{de.UID, de.GID}
		}
		pre.setDestination(p.DstFS, dst.Path, ds, p.dstOwner)
	}()
	var ss *storeScan
	srcOpts := scanOpts{contentOnly: true}
	if pre != nil {
		srcOpts.each = pre.offer
	}
	p.SrcFS, ss, err = openSide(ctx, c, src, srcOpts)
	<-dsDone
	pre.finish()
	if err != nil {
		if p.SrcFS == nil {
			return nil, err
		}
		return nil, fsError("read source store", src, err)
	}
	var refused, warned []string
	for _, pr := range ss.Problems {
		switch {
		case refuseSource[pr.Code]:
			refused = append(refused, pr.String())
		case warnSource[pr.Code]:
			warned = append(warned, pr.String())
		}
	}
	if len(warned) > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("source %s: mirrored as is, but these users cannot log in (whawty's check only warns): %s",
			src, summarize(warned, 5)))
	}
	if len(refused) > 0 {
		return nil, sdk.Errorf(sdk.KindConflict, false,
			"fix the master store first (run whawty.check on it); nothing was written to the destination",
			"source store %s would fail check: %s", src, summarize(refused, 5))
	}
	for _, e := range ss.Other {
		p.Warnings = append(p.Warnings, fmt.Sprintf("source %s: not mirrored: %s is not a hash file", src, e.Name))
	}
	if dsErr != nil {
		if p.DstFS == nil {
			return nil, dsErr
		}
		return nil, fsError("read destination store", dst, dsErr)
	}
	p.dst = ds
	p.dstHasTmp = ds.Tmp != nil && ds.Tmp.Dir
	if ds.Tmp != nil && !ds.Tmp.Dir {
		return nil, sdk.Errorf(sdk.KindConflict, false, "remove the file named .tmp in the destination store",
			"destination %s: .tmp is not a directory", dst)
	}
	for _, e := range ds.Other {
		if !e.Dir && !e.Regular {
			return nil, sdk.Errorf(sdk.KindConflict, false, "remove it by hand; sync only deletes regular files",
				"destination %s holds %s, which is not a regular file", dst, e.Name)
		}
		if e.Dir {
			return nil, sdk.Errorf(sdk.KindConflict, false,
				"move the directory out of the destination store by hand; sync never deletes directories",
				"destination %s holds a directory %s", dst, e.Name)
		}
		p.dstOther[e.Name] = e
	}

	// Adds, updates and deletes of user files: one walk over both sorted
	// name lists.
	var adds, deletes, strays []syncOp
	sn, dn := ss.Names, ds.Names
	for i, j := 0, 0; i < len(sn) || j < len(dn); {
		if i == len(sn) || (j < len(dn) && dn[j] < sn[i]) {
			deletes = append(deletes, syncOp{Kind: opDelete, Name: dn[j]}) // not on the source
			j++
			continue
		}
		n, f := sn[i], ss.List[i]
		var df *userFile
		if j < len(dn) && dn[j] == n {
			df = ds.List[j]
			j++
		}
		i++
		if len(f.Content) == 0 {
			p.skippedSources[n] = true
			p.Warnings = append(p.Warnings, fmt.Sprintf("source %s: %s is empty (an add in progress?); left as is on the destination", src, n))
			continue
		}
		p.SourceFiles++
		if _, other := p.dstOther[n]; other {
			return nil, sdk.Errorf(sdk.KindConflict, false, "replace it by hand with a regular file or remove it",
				"destination %s: %s is not a regular file", dst, n)
		}
		switch {
		case df == nil:
			adds = append(adds, syncOp{Kind: opAdd, Name: n, Data: f.Content})
		case !bytes.Equal(df.Content, f.Content) || df.Entry.Mode.Perm() != 0o600:
			adds = append(adds, syncOp{Kind: opUpdate, Name: n, Data: f.Content})
		case foreignOwner(p.dstOwner, df.Entry):
			// Rewritten with the directory's owner.
			p.Warnings = append(p.Warnings, fmt.Sprintf("destination %s: %s is owned by %d:%d, not by the store's owner %d:%d; rewriting it",
				dst, n, df.Entry.UID, df.Entry.GID, p.dstOwner[0], p.dstOwner[1]))
			adds = append(adds, syncOp{Kind: opUpdate, Name: n, Data: f.Content})
		default:
			p.Unchanged++
		}
	}
	others := make([]string, 0, len(p.dstOther))
	for n := range p.dstOther {
		others = append(others, n)
	}
	sort.Strings(others)
	for _, n := range others {
		if ss.Files[n] != nil {
			continue
		}
		op := syncOp{Kind: opDelete, Name: n}
		if _, _, isHash := splitName(n); isHash {
			deletes = append(deletes, op)
		} else {
			strays = append(strays, op)
		}
	}
	sort.SliceStable(deletes, func(i, j int) bool { return deletes[i].Name < deletes[j].Name })
	// Order: stray files first (they already break whawty's check), then
	// adds and updates with the delete of a user's other flavour (x.user
	// when x.admin is added) just before, then the remaining deletes.
	p.Ops = append(p.Ops, strays...)
	pending := map[string]int{}
	for i, d := range deletes {
		pending[d.Name] = i
	}
	done := map[int]bool{}
	for _, a := range adds {
		user, admin, _ := splitName(a.Name)
		other := user + ".user"
		if !admin {
			other = user + ".admin"
		}
		if i, ok := pending[other]; ok && !done[i] {
			p.Ops = append(p.Ops, deletes[i])
			done[i] = true
		}
		p.Ops = append(p.Ops, a)
	}
	for i, d := range deletes {
		if !done[i] {
			p.Ops = append(p.Ops, d)
		}
	}
	for _, op := range p.Ops {
		p.counts[op.Kind]++
		p.bytesToWrite += int64(len(op.Data))
	}
	if dstCfg != nil {
		if err := p.checkAgainst(ss, dstCfg); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checkAgainst refuses a sync whose result the destination's whawty would
// reject with its own config cf: a file the sync writes with a hash on a
// parameter-set cf lacks (or of another format), whose user could no
// longer log in there, or no admin left with a supported hash (whawty's
// check fails and whawty will not start).
func (p *syncPlan) checkAgainst(ss *storeScan, cf *configFile) error {
	var spread []string
	perSet := map[uint64]int{}
	for _, op := range p.Ops {
		if op.Kind == opDelete {
			continue
		}
		f := ss.Files[op.Name]
		if f == nil || f.HashErr != nil {
			continue // unparseable: whawty only warns (see warnSource)
		}
		if set := cf.Cfg.Sets[f.Hash.ParamID]; set == nil || set.format() != f.Hash.Format {
			spread = append(spread, op.Name)
			perSet[f.Hash.ParamID]++
		}
	}
	if len(spread) > 0 {
		var sets []string
		for _, id := range slices.Sorted(maps.Keys(perSet)) {
			sets = append(sets, fmt.Sprintf("%d on parameter-set %d", perSet[id], id))
		}
		return sdk.Errorf(sdk.KindConflict, false,
			"add the parameter-set to the slave's config first (whawty.param_set_add with the master's hmackey, then reload it), then sync; nothing was written",
			"destination config %s cannot verify %d hash(es) the sync would write to %s (%s): %s",
			cf.Loc, len(spread), p.Dst, strings.Join(sets, ", "), summarize(spread, 10))
	}
	// The result: every mirrored source file, and the destination's own
	// file where the source's is an empty placeholder left as is.
	supported := false
	for _, f := range ss.List {
		if !f.Admin || !usernameRE.MatchString(f.User) {
			continue
		}
		h, herr := f.Hash, f.HashErr
		if p.skippedSources[f.Name] {
			dc, ok := p.dstContent(f.Name)
			if !ok {
				continue
			}
			h, herr = parseHashFile(dc)
		}
		if herr != nil {
			continue
		}
		if set := cf.Cfg.Sets[h.ParamID]; set != nil && set.format() == h.Format {
			supported = true
			break
		}
	}
	if !supported {
		return sdk.Errorf(sdk.KindConflict, false,
			"add the admins' parameter-set to the slave's config first; nothing was written",
			"after the sync no admin in %s would have a hash its config %s supports; whawty's check would fail there", p.Dst, cf.Loc)
	}
	return nil
}

// details renders up to max operations, one per line.
func (p *syncPlan) details(max int) []string {
	var out []string
	for i, op := range p.Ops {
		if i == max {
			out = append(out, fmt.Sprintf("... and %d more", len(p.Ops)-max))
			break
		}
		out = append(out, fmt.Sprintf("%s %s", op.Kind, op.Name))
	}
	return out
}

func (p *syncPlan) summary() string {
	return fmt.Sprintf("sync %s -> %s: %d to add, %d to update, %d to delete, %d unchanged",
		p.Src, p.Dst, p.counts[opAdd], p.counts[opUpdate], p.counts[opDelete], p.Unchanged)
}

// verifyDestination lists the destination again after the sync and checks
// that whawty would accept it, that every file holds what was written and
// that no other file appeared or vanished meanwhile.
func (p *syncPlan) verifyDestination(ctx context.Context) error {
	ents, err := p.DstFS.ReadDir(p.Dst.Path)
	if err != nil {
		return fsError("list destination", p.Dst, err)
	}
	ops := make(map[string]*syncOp, len(p.Ops))
	for i := range p.Ops {
		ops[p.Ops[i].Name] = &p.Ops[i]
	}
	var bad []string
	var other []entry
	present := make([]string, 0, len(ents))
	var written []string
	for _, e := range ents {
		if e.Name == ".tmp" {
			continue
		}
		if _, _, ok := splitName(e.Name); !ok || !e.Regular {
			other = append(other, e)
			continue
		}
		present = append(present, e.Name)
		op := ops[e.Name]
		switch {
		case op != nil && op.Kind != opDelete:
			written = append(written, e.Name)
		case op == nil && p.dst.Files[e.Name] != nil:
			// untouched by the sync
		default:
			bad = append(bad, e.Name+": appeared during sync")
		}
	}
	// Every file that should be there is: the untouched ones and the ones
	// written, in name order against the sorted listing.
	want := make([]string, 0, len(p.dst.Names)+len(p.Ops))
	for _, n := range p.dst.Names {
		if op := ops[n]; op == nil || op.Kind != opDelete {
			want = append(want, n)
		}
	}
	for _, op := range p.Ops {
		if op.Kind == opAdd {
			want = append(want, op.Name)
		}
	}
	slices.Sort(want)
	slices.Sort(present)
	for i, j := 0, 0; i < len(want); {
		switch {
		case j < len(present) && present[j] == want[i]:
			i++
			j++
		case j < len(present) && present[j] < want[i]:
			j++
		default:
			if !p.skippedSources[want[i]] {
				bad = append(bad, want[i]+": missing after sync")
			}
			i++
		}
	}
	// Read back what the sync wrote.
	content := map[string][]byte{}
	if len(written) > 0 {
		got, err := p.DstFS.ReadFiles(ctx, p.Dst.Path, written)
		if err != nil {
			return fsError("read destination", p.Dst, err)
		}
		for _, n := range written {
			fd, ok := got[n]
			switch {
			case !ok:
				bad = append(bad, n+": missing after sync")
			case !bytes.Equal(ops[n].Data, fd.Data):
				bad = append(bad, n+": content differs from what was written")
			case fd.Entry != nil && fd.Entry.Mode.Perm() != 0o600:
				bad = append(bad, fmt.Sprintf("%s: mode %04o after sync, want 0600", n, fd.Entry.Mode.Perm()))
			}
			content[n] = fd.Data
		}
	}
	fileContent := func(n string) []byte {
		if b, ok := content[n]; ok {
			return b
		}
		if f := p.dst.Files[n]; f != nil {
			return f.Content
		}
		return nil
	}
	for _, pr := range fatalChecks(present, other, fileContent) {
		bad = append(bad, pr.String())
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return sdk.Errorf(sdk.KindConflict, true,
			"something else writes to the destination store (an rsync timer?); stop it and retry",
			"destination %s is not consistent after sync: %s", p.Dst, summarize(bad, 5))
	}
	return nil
}

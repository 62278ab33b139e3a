package whawty

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"

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

// dstContent is the content of the destination's user file name before
// the sync (ok=false for other entries).
func (p *syncPlan) dstContent(name string) ([]byte, bool) {
	if f := p.dst.Files[name]; f != nil {
		return f.Content, true
	}
	return nil, false
}

// refuseSource are source problems that make the source unfit to mirror:
// copying them would make the slave fail whawty's check or authentication.
var refuseSource = map[string]bool{
	probBothUserAdmin: true, probNoAdmin: true, probUnparseable: true, probDirectory: true,
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
func planSync(ctx context.Context, c *conns, srcIn, dstIn string, pre *prestager) (*syncPlan, error) {
	src, err := decodeLoc("source", srcIn)
	if err != nil {
		return nil, err
	}
	dst, err := decodeLoc("destination", dstIn)
	if err != nil {
		return nil, err
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
	var refused []string
	for _, pr := range ss.Problems {
		if refuseSource[pr.Code] {
			refused = append(refused, pr.String())
		}
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
	return p, nil
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

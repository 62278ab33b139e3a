package whawty

import (
	"bytes"
	"context"
	"fmt"
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
	Src, Dst       location
	SrcFS, DstFS   fileSystem
	Ops            []syncOp
	Unchanged      int64
	SourceFiles    int64
	Warnings       []string
	dstContents    map[string][]byte // destination content before the sync
	dstEntries     map[string]entry
	dstHasTmp      bool
	dstOwner       [2]int // uid, gid of the destination directory, for new files
	counts         map[string]int64
	bytesToWrite   int64
	skippedSources map[string]bool // source names not mirrored (empty placeholders)
	// prior is the undo state an interrupted earlier attempt journaled.
	prior *syncUndo
}

// refuseSource are source problems that make the source unfit to mirror:
// copying them would make the slave fail whawty's check or authentication.
var refuseSource = map[string]bool{
	probBothUserAdmin: true, probNoAdmin: true, probUnparseable: true, probDirectory: true,
}

// planSync reads both stores and computes the operations.
func planSync(ctx context.Context, c *conns, srcIn, dstIn string) (*syncPlan, error) {
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
	p := &syncPlan{Src: src, Dst: dst, dstOwner: [2]int{-1, -1}, counts: map[string]int64{}, skippedSources: map[string]bool{}}
	if p.SrcFS, err = c.fs(ctx, src); err != nil {
		return nil, err
	}
	if p.DstFS, err = c.fs(ctx, dst); err != nil {
		return nil, err
	}
	// Read both stores at once: they are usually on different hosts, and
	// locally the two scans use both cores.
	var ds *storeScan
	var dsErr error
	dsDone := make(chan struct{})
	go func() {
		defer close(dsDone)
		ds, dsErr = scanStore(ctx, p.DstFS, dst.Path, nil)
	}()
	ss, err := scanStore(ctx, p.SrcFS, src.Path, nil)
	<-dsDone
	if err != nil {
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
		return nil, fsError("read destination store", dst, dsErr)
	}
	p.dstHasTmp = ds.Tmp != nil && ds.Tmp.Dir
	if ds.Tmp != nil && !ds.Tmp.Dir {
		return nil, sdk.Errorf(sdk.KindConflict, false, "remove the file named .tmp in the destination store",
			"destination %s: .tmp is not a directory", dst)
	}
	p.dstContents = map[string][]byte{}
	p.dstEntries = map[string]entry{}
	for n, f := range ds.Files {
		p.dstContents[n] = f.Content
		p.dstEntries[n] = f.Entry
	}
	if de, err := p.DstFS.Stat(dst.Path); err == nil {
		p.dstOwner = [2]int{de.UID, de.GID}
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
		p.dstEntries[e.Name] = e
	}

	// Adds and updates, in name order.
	names := make([]string, 0, len(ss.Files))
	for n := range ss.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var adds, deletes, strays []syncOp
	want := map[string]bool{}
	for _, n := range names {
		f := ss.Files[n]
		want[n] = true
		if len(f.Content) == 0 {
			p.skippedSources[n] = true
			p.Warnings = append(p.Warnings, fmt.Sprintf("source %s: %s is empty (an add in progress?); left as is on the destination", src, n))
			continue
		}
		p.SourceFiles++
		de, exists := p.dstEntries[n]
		switch {
		case !exists:
			adds = append(adds, syncOp{Kind: opAdd, Name: n, Data: f.Content})
		case !de.Regular:
			return nil, sdk.Errorf(sdk.KindConflict, false, "replace it by hand with a regular file or remove it",
				"destination %s: %s is not a regular file", dst, n)
		case !bytes.Equal(p.dstContents[n], f.Content) || de.Mode.Perm() != 0o600:
			adds = append(adds, syncOp{Kind: opUpdate, Name: n, Data: f.Content})
		default:
			p.Unchanged++
		}
	}
	// Deletes: every destination entry the source does not have.
	dnames := make([]string, 0, len(p.dstEntries))
	for n := range p.dstEntries {
		dnames = append(dnames, n)
	}
	sort.Strings(dnames)
	for _, n := range dnames {
		if want[n] {
			continue
		}
		op := syncOp{Kind: opDelete, Name: n}
		if _, _, isHash := splitName(n); isHash {
			deletes = append(deletes, op)
		} else {
			strays = append(strays, op)
		}
	}
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
// that whawty would accept it and that every file holds what was written.
func (p *syncPlan) verifyDestination(ctx context.Context) error {
	ents, err := p.DstFS.ReadDir(p.Dst.Path)
	if err != nil {
		return fsError("list destination", p.Dst, err)
	}
	want := map[string][]byte{}
	for n, b := range p.dstContents {
		want[n] = b
	}
	written := map[string]bool{}
	for _, op := range p.Ops {
		if op.Kind == opDelete {
			delete(want, op.Name)
		} else {
			want[op.Name] = op.Data
			written[op.Name] = true
		}
	}
	var bad []string
	scan := &storeScan{Dir: p.Dst.Path, Files: map[string]*userFile{}}
	var names []string
	for _, e := range ents {
		if e.Name == ".tmp" {
			e := e
			scan.Tmp = &e
			continue
		}
		user, admin, ok := splitName(e.Name)
		if !ok || !e.Regular {
			scan.Other = append(scan.Other, e)
			continue
		}
		f := &userFile{Name: e.Name, User: user, Admin: admin, Entry: e}
		if b, known := want[e.Name]; known && !written[e.Name] {
			f.Content = b
			f.Hash, f.HashErr = parseHashFile(b)
		} else {
			names = append(names, e.Name)
		}
		scan.Files[e.Name] = f
	}
	// Read back what the sync wrote, and anything unexpected.
	if len(names) > 0 {
		got, err := p.DstFS.ReadFiles(ctx, p.Dst.Path, names)
		if err != nil {
			return fsError("read destination", p.Dst, err)
		}
		for _, n := range names {
			fd, ok := got[n]
			if !ok {
				delete(scan.Files, n)
				continue
			}
			scan.Files[n].Content = fd.Data
			scan.Files[n].Hash, scan.Files[n].HashErr = parseHashFile(fd.Data)
			if w, ok := want[n]; ok && !bytes.Equal(w, fd.Data) {
				bad = append(bad, n+": content differs from what was written")
			}
		}
	}
	scan.Problems = scan.check(nil)
	for _, pr := range scan.fatal() {
		bad = append(bad, pr.String())
	}
	for n := range want {
		if scan.Files[n] == nil && !p.skippedSources[n] {
			bad = append(bad, n+": missing after sync")
		}
	}
	for n := range scan.Files {
		if _, ok := want[n]; !ok {
			bad = append(bad, n+": appeared during sync")
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return sdk.Errorf(sdk.KindConflict, true,
			"something else writes to the destination store (an rsync timer?); stop it and retry",
			"destination %s is not consistent after sync: %s", p.Dst, summarize(bad, 5))
	}
	return nil
}

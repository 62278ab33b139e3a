package whawty

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// peerConfigsInput is the input of every config-editing action that names
// the other hosts sharing the store: their stores' hashes must keep a set.
var peerConfigsInput = sdk.Attribute{
	Name: "peer_configs", Type: cty.List(cty.String),
	Description: "Configs of the other hosts sharing this store (the master and every slave; this config may be among them and is skipped). " +
		"Their stores (each config's basedir on its host) are looked at too: an undo never removes a parameter-set a hash in any of them uses, " +
		"and param_set_remove refuses while any of them still uses the set.",
}

// peerConfigsOf reads the peer_configs input (nil when absent).
func peerConfigsOf(v cty.Value) []string {
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute("peer_configs") {
		return nil
	}
	l := v.GetAttr("peer_configs")
	if l.IsNull() || !l.IsKnown() || !l.CanIterateElements() {
		return nil
	}
	var out []string
	for it := l.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

// peerLocations parses the peer configs, leaving out own and duplicates.
func peerLocations(own location, peers []string) ([]location, error) {
	seen := map[string]bool{own.String(): true}
	var out []location
	for _, p := range peers {
		l, err := decodeLoc("peer_configs", p)
		if err != nil {
			return nil, err
		}
		if seen[l.String()] {
			continue
		}
		seen[l.String()] = true
		out = append(out, l)
	}
	return out, nil
}

// peerConfigsDiag validates the peer_configs input for Validate.
func peerConfigsDiag(d sdk.Diagnostics, inputs cty.Value) sdk.Diagnostics {
	for _, p := range peerConfigsOf(inputs) {
		if _, err := parseLocation(p); err != nil {
			d = d.Errorf([]string{"peer_configs"}, "%v", sdk.Classify(err).Err)
		}
	}
	return d
}

// setUse counts the hashes on some parameter-sets in a group of stores.
type setUse struct {
	// Count is the number of hashes per set id over every store read.
	Count map[uint64]int64
	// Stores lists, per set id, "<n> in <store>" for each store with
	// hashes on it.
	Stores map[uint64][]string
	// Unread lists the stores that could not be read, with why.
	Unread []string
}

// total is the number of hashes on id.
func (u *setUse) total(id uint64) int64 { return u.Count[id] }

// describe says who uses id, e.g. "300 hash(es): 250 in /srv/store, 50 in
// ssh://...".
func (u *setUse) describe(id uint64) string {
	return fmt.Sprintf("%d hash(es): %s", u.Count[id], strings.Join(u.Stores[id], ", "))
}

// countSetUse counts the hashes on ids in the store of the config own
// (already parsed as ownCfg) and in the stores of the peer configs. A
// store that cannot be read is listed in Unread, not an error: the caller
// then keeps every set (keeping a set never locks anyone out).
func countSetUse(ctx context.Context, c *conns, own location, ownCfg *storeConfig, peers []string, ids []uint64) (*setUse, error) {
	u := &setUse{Count: map[uint64]int64{}, Stores: map[uint64][]string{}}
	want := map[uint64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	count := func(cfgLoc location, cfg *storeConfig) {
		l := cfgLoc
		l.Path = cfg.BaseDir
		if !strings.HasPrefix(l.Path, "/") {
			u.Unread = append(u.Unread, fmt.Sprintf("%s: basedir %q is not absolute", cfgLoc, cfg.BaseDir))
			return
		}
		fsys, err := c.fs(ctx, l)
		if err != nil {
			u.Unread = append(u.Unread, fmt.Sprintf("%s: %v", l, err))
			return
		}
		scan, err := scanStore(ctx, fsys, l.Path, nil)
		if err != nil {
			u.Unread = append(u.Unread, fmt.Sprintf("%s: %v", l, err))
			return
		}
		per := map[uint64]int64{}
		for _, f := range scan.List {
			if f.HashErr == nil && len(f.Content) > 0 && want[f.Hash.ParamID] {
				per[f.Hash.ParamID]++
			}
		}
		for id, n := range per {
			u.Count[id] += n
			u.Stores[id] = append(u.Stores[id], fmt.Sprintf("%d in %s", n, l))
		}
	}
	count(own, ownCfg)
	locs, err := peerLocations(own, peers)
	if err != nil {
		return nil, err
	}
	for _, pl := range locs {
		pc, err := loadConfig(ctx, c, pl)
		if err != nil {
			u.Unread = append(u.Unread, fmt.Sprintf("%s: %v", pl, err))
			continue
		}
		count(pl, pc.Cfg)
	}
	return u, nil
}

// keepUsedSets is the store-aware part of a config undo. orig is the file
// as it was before the step, cur the file now. Undoing an add (or a switch
// of the default that came with one) would drop the sets cur has and orig
// lacks; any such set a hash uses (here or in a peer's store) is kept,
// with orig's default, so that no user is locked out. It returns what to
// write and the warning that says what was kept (empty: a full undo).
func keepUsedSets(ctx context.Context, c *conns, loc location, orig, cur []byte, peers []string, force bool) ([]byte, string, error) {
	origCfg, err := parseConfig(orig)
	if err != nil {
		return nil, "", configInvalid(loc, err)
	}
	curCfg, err := parseConfig(cur)
	if err != nil {
		return nil, "", configInvalid(loc, err)
	}
	var dropped []uint64
	for _, id := range curCfg.IDs {
		if origCfg.Sets[id] == nil {
			dropped = append(dropped, id)
		}
	}
	if len(dropped) == 0 {
		return orig, "", nil
	}
	use, err := countSetUse(ctx, c, loc, curCfg, peers, dropped)
	if err != nil {
		return nil, "", err
	}
	var keep []uint64
	var why []string
	for _, id := range dropped {
		switch {
		case use.total(id) > 0:
			keep = append(keep, id)
			why = append(why, fmt.Sprintf("parameter-set %d: %s", id, use.describe(id)))
		case len(use.Unread) > 0:
			keep = append(keep, id)
		}
	}
	if len(use.Unread) > 0 {
		why = append(why, "could not read "+strings.Join(use.Unread, "; "))
	}
	if len(keep) == 0 {
		return orig, "", nil
	}
	if force {
		return orig, fmt.Sprintf("force: config %s restored as it was, removing parameter-set(s) %s although they are in use (%s); those users can no longer log in",
			loc, idsText(keep), strings.Join(why, "; ")), nil
	}
	out, err := parseConfig(orig)
	if err != nil {
		return nil, "", configInvalid(loc, err)
	}
	for _, id := range keep {
		if err := out.addSet(curCfg.Sets[id]); err != nil {
			return nil, "", configInvalid(loc, err)
		}
	}
	data, err := out.encode()
	if err != nil {
		return nil, "", sdk.Errorf(sdk.KindInternal, false, "restore the config by hand", "config %s: %v", loc, err)
	}
	return data, fmt.Sprintf("partial undo of config %s: default parameter-set is %d again, but parameter-set(s) %s are kept since removing them would lock users out (%s); "+
		"retire them with whawty.param_set_remove once no hash uses them (or roll back with -force to remove them anyway)",
		loc, origCfg.Default, idsText(keep), strings.Join(why, "; ")), nil
}

func idsText(ids []uint64) string {
	s := append([]uint64(nil), ids...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	parts := make([]string, len(s))
	for i, id := range s {
		parts[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(parts, ", ")
}

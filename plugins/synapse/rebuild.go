package synapse

import "slices"

// completedBy lists, per entity, the MAS tables that no later step writes
// to: once the entity's step is done, their indexes and keys can be
// rebuilt, on the MAS connection, while the next steps read Synapse.
var completedBy = map[string][]string{
	entUsers:        {"users", "user_passwords"},
	entThreepids:    {"user_emails", "user_unsupported_third_party_ids"},
	entExternalIDs:  {"upstream_oauth_links"},
	entAccessTokens: nil, // compat_sessions and compat_access_tokens get more rows later
	entRefresh:      {"compat_access_tokens", "compat_refresh_tokens"},
	entDevices:      {"compat_sessions"},
}

// rebuildPlan hands out the paused definitions as their tables fill up:
// a table's indexes, then its primary and unique keys, once the table is
// complete; a foreign key once both its table and the table it refers to
// are complete (or are not migrated), so that the key it refers to exists
// and its check reads final data. Whatever is handed out is rebuilt before
// the commit, in the same transaction; rest returns what is left.
//
// It is used by one goroutine.
type rebuildPlan struct {
	defs     []savedDef
	done     []bool          // by index in defs
	complete map[string]bool // migrated tables that get no more rows
}

func newRebuildPlan(defs []savedDef) *rebuildPlan {
	return &rebuildPlan{defs: defs, done: make([]bool, len(defs)), complete: map[string]bool{}}
}

// settled reports whether table gets no more rows.
func (p *rebuildPlan) settled(table string) bool {
	return p.complete[table] || !slices.Contains(masTables, table)
}

// ready marks tables complete and returns the definitions that can now be
// rebuilt, in order: indexes, keys, foreign keys.
func (p *rebuildPlan) ready(tables ...string) []savedDef {
	for _, t := range tables {
		p.complete[t] = true
	}
	var out []savedDef
	for _, kind := range []string{"index", "key", "fkey"} {
		for i, d := range p.defs {
			if p.done[i] || d.Kind != kind {
				continue
			}
			ok := p.complete[d.Table]
			if kind == "fkey" {
				ok = p.settled(d.Table) && p.settled(d.Ref)
			}
			if ok {
				p.done[i] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// rest returns, in rebuild order, every definition not handed out yet.
func (p *rebuildPlan) rest() []savedDef {
	return p.ready(masTables...)
}

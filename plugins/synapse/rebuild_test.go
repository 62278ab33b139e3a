package synapse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRebuildPlan(t *testing.T) {
	defs := []savedDef{
		{Table: "user_passwords", Name: "user_passwords_user_id_fkey", Kind: "fkey", Ref: "users"},
		{Table: "user_sessions", Name: "user_sessions_user_id_fkey", Kind: "fkey", Ref: "users"},
		{Table: "upstream_oauth_links", Name: "upstream_oauth_links_provider_fkey", Kind: "fkey", Ref: "upstream_oauth_providers"},
		{Table: "compat_access_tokens", Name: "compat_access_tokens_compat_session_id_fkey", Kind: "fkey", Ref: "compat_sessions"},
		{Table: "users", Name: "users_pkey", Kind: "key"},
		{Table: "compat_sessions", Name: "compat_sessions_pkey", Kind: "key"},
		{Table: "compat_access_tokens", Name: "compat_access_tokens_pkey", Kind: "key"},
		{Table: "users", Name: "users_lower_username_idx", Kind: "index"},
		{Table: "user_passwords", Name: "user_passwords_user_fk", Kind: "index"},
		{Table: "compat_sessions", Name: "compat_sessions_user_fk", Kind: "index"},
	}
	p := newRebuildPlan(defs)
	names := func(ds []savedDef) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	steps := []struct {
		tables []string
		want   []string
	}{
		// Only users: its index and key, and the key of a table that is
		// not migrated pointing at it; not yet the passwords' key.
		{[]string{"users"}, []string{"users_lower_username_idx", "users_pkey", "user_sessions_user_id_fkey"}},
		{[]string{"user_passwords"}, []string{"user_passwords_user_fk", "user_passwords_user_id_fkey"}},
		{nil, nil},
		{[]string{"upstream_oauth_links"}, []string{"upstream_oauth_links_provider_fkey"}},
		// The tokens' key waits for the sessions table.
		{[]string{"compat_access_tokens"}, []string{"compat_access_tokens_pkey"}},
		{[]string{"compat_sessions"}, []string{"compat_sessions_user_fk", "compat_sessions_pkey", "compat_access_tokens_compat_session_id_fkey"}},
	}
	for i, s := range steps {
		if d := cmp.Diff(s.want, names(p.ready(s.tables...))); d != "" {
			t.Errorf("step %d (%v) (-want +got):\n%s", i, s.tables, d)
		}
	}
	if got := p.rest(); len(got) != 0 {
		t.Errorf("rest after everything: %v", names(got))
	}

	// rest hands out everything left, indexes first and foreign keys last.
	p = newRebuildPlan(defs)
	p.ready("users")
	want := []string{"user_passwords_user_fk", "compat_sessions_user_fk", "compat_sessions_pkey", "compat_access_tokens_pkey",
		"user_passwords_user_id_fkey", "upstream_oauth_links_provider_fkey", "compat_access_tokens_compat_session_id_fkey"}
	if d := cmp.Diff(want, names(p.rest())); d != "" {
		t.Errorf("rest (-want +got):\n%s", d)
	}
}

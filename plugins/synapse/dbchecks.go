package synapse

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// checkOptions are the inputs that turn findings into warnings.
type checkOptions struct {
	// ignoreMissingProviders: an IdP in use that the Synapse config does
	// not define is a warning (its links still need a MAS provider).
	ignoreMissingProviders bool
	// dropUnmappedLinks: links to an IdP that no MAS provider maps are
	// dropped (a warning) instead of refused.
	dropUnmappedLinks bool
	// errorsOnly: run only the checks that can refuse, and not those whose
	// rows the migration itself stops at (migrate, which re-runs them on
	// its snapshot; check reported the warnings).
	errorsOnly bool
}

// maxCreationTS is the largest users.creation_ts read as seconds (year
// 5138); larger values are milliseconds written by some other tool.
const maxCreationTS = 100_000_000_000

// bcryptHash is a hash MAS's bcrypt scheme can verify.
const bcryptHash = `^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`

// asColonLocalpart holds for an appservice user (alias u) of server $1
// whose localpart holds a ':': the migration drops it without
// remembering it, so any row of its fails the migration.
const asColonLocalpart = `u.appservice_id IS NOT NULL AND right(u.name, length($1) + 1) = ':' || $1
  AND strpos(substr(u.name, 2, length(u.name) - length($1) - 2), ':') > 0`

// dependentReads are the rows the migration reads that must belong to a
// migrated user, as the migration reads them.
var dependentReads = []struct{ table, query string }{
	{"user_threepids", qThreepids},
	{"user_external_ids", qExternalIDs},
	{"access_tokens", qAccessTokens},
	{"refresh_tokens", qRefreshTokens},
	{"devices", qDevices},
}

// checkSynapseDB runs the read-only queries on the Synapse database. The
// decisions (error: the migration would fail or lose data; warning: it
// goes through, as documented) are listed in docs/plugins/synapse.md.
func checkSynapseDB(ctx context.Context, e *env, tx pgx.Tx, opt checkOptions, r *report) error {
	var n int64
	var example *string
	q := func(sql string, args ...any) error {
		example = nil
		return tx.QueryRow(ctx, sql, args...).Scan(&n, &example)
	}
	type finding struct {
		sql  string
		args []any
		add  func(n int64, example string)
		warn bool // only ever a warning
	}
	hs := e.homeserver
	findings := []finding{
		{`SELECT COUNT(1), NULL::text FROM users WHERE is_guest <> 0`, nil, func(n int64, _ string) {
			r.warnf("%d guest users: they are migrated, but MAS does not support guest access", n)
		}, true},
		{`SELECT COUNT(1), min(medium) FROM user_threepids WHERE medium <> 'email'`, nil, func(n int64, ex string) {
			r.warnf("%d third-party ids are not emails (e.g. %s): they go to user_unsupported_third_party_ids", n, ex)
		}, true},
		{`SELECT COUNT(1), min(user_id) FROM user_external_ids WHERE auth_provider = 'oauth-delegated'`, nil, func(n int64, _ string) {
			r.errorf("%d user_external_ids rows have auth_provider 'oauth-delegated' (left by an earlier MAS); delete them: DELETE FROM user_external_ids WHERE auth_provider = 'oauth-delegated'", n)
		}, false},
		{`SELECT COUNT(1), min(coalesce(name, '(NULL name)')) FROM users WHERE name IS NULL OR creation_ts IS NULL`, nil, func(n int64, ex string) {
			r.errorf("%d users have a NULL name or creation_ts (e.g. %s): the migration would fail on them", n, ex)
		}, false},
		{`SELECT COUNT(1), min(name) FROM users WHERE name NOT LIKE '@%'`, nil, func(n int64, ex string) {
			r.errorf("%d user ids lack the '@' sigil (e.g. %s): they would be migrated as another user (or collide with one); fix or delete them in Synapse", n, ex)
		}, false},
		{`SELECT COUNT(1), min(name) FROM users WHERE name IS NOT NULL AND (
  (appservice_id IS NULL AND (strpos(name, ':') = 0 OR substr(name, strpos(name, ':') + 1) <> $1))
  OR (appservice_id IS NOT NULL AND right(name, length($1) + 1) <> ':' || $1))`, []any{hs}, func(n int64, ex string) {
			r.errorf("%d user ids are not on server %q (e.g. %s): the migration would fail with a wrong server name", n, hs, ex)
		}, false},
		{`SELECT COUNT(1), min(name) FROM users WHERE creation_ts > $1`, []any{int64(maxCreationTS)}, func(n int64, ex string) {
			r.errorf("%d users have a creation_ts in milliseconds, not seconds (e.g. %s): they would be created thousands of years from now; fix them in Synapse: UPDATE users SET creation_ts = creation_ts / 1000 WHERE creation_ts > %d", n, ex, int64(maxCreationTS))
		}, false},
		{`SELECT COUNT(1), min(u.name) FROM users u WHERE ` + asColonLocalpart, []any{hs}, func(n int64, ex string) {
			r.warnf("%d appservice users have a ':' in their localpart (e.g. %s): they are dropped, and any row of theirs fails the migration", n, ex)
		}, true},
		{`SELECT COUNT(1), min(name) FROM users WHERE password_hash IS NOT NULL AND appservice_id IS NULL AND password_hash !~ $1`, []any{bcryptHash}, func(n int64, ex string) {
			r.warnf("%d users have a password hash MAS cannot verify, not a bcrypt hash (e.g. %s): it is migrated as it is, and they can log in with a password only after a reset", n, ex)
		}, true},
		{`SELECT COUNT(1), min(address) FROM (SELECT lower(address) AS address FROM user_threepids WHERE medium = 'email'
  GROUP BY lower(address) HAVING COUNT(DISTINCT user_id) > 1) x`, nil, func(n int64, ex string) {
			r.warnf("%d email addresses belong to more than one user once case is ignored (e.g. %s): they are migrated as they are, but MAS looks emails up without case, so recovery and login by email may pick either user", n, ex)
		}, true},
		{`SELECT COUNT(1), min(a.user_id) FROM access_tokens a JOIN devices d USING (user_id, device_id) WHERE d.hidden AND a.puppets_user_id IS NULL`, nil, func(n int64, ex string) {
			r.warnf("%d access tokens belong to hidden devices (e.g. of %s): they are not migrated", n, ex)
		}, true},
		{`SELECT COUNT(1), min(a.user_id) FROM access_tokens a JOIN users u ON u.name = a.user_id
WHERE a.device_id = 'guest_device' AND u.is_guest = 0 AND a.puppets_user_id IS NULL`, nil, func(n int64, ex string) {
			r.warnf("%d access tokens of users who are not guests are on device guest_device (e.g. of %s): they are not migrated, those clients must log in again", n, ex)
		}, true},
	}
	for _, f := range findings {
		if f.warn && opt.errorsOnly {
			continue
		}
		if err := q(f.sql, f.args...); err != nil {
			return fmt.Errorf("check %s: %w", firstLineOf(f.sql), err)
		}
		if n > 0 {
			f.add(n, str(example))
		}
	}
	if !opt.errorsOnly {
		if err := checkDependentRows(ctx, tx, hs, r); err != nil {
			return err
		}
	}
	if err := checkProviders(ctx, e, tx, opt, r); err != nil {
		return err
	}
	if opt.errorsOnly {
		return nil
	}
	est, err := entityTotals(ctx, tx)
	if err != nil {
		return err
	}
	r.counts = est
	return nil
}

// checkDependentRows finds the rows the migration would stop at: rows
// whose user is not in users, and rows of appservice users with a ':' in
// their localpart (dropped without being remembered).
func checkDependentRows(ctx context.Context, tx pgx.Tx, hs string, r *report) error {
	for _, d := range dependentReads {
		var missing, asColon int64
		var exMissing, exAS *string
		err := tx.QueryRow(ctx, `SELECT COUNT(1) FILTER (WHERE u.name IS NULL), min(q.user_id) FILTER (WHERE u.name IS NULL),
       COUNT(1) FILTER (WHERE u.name IS NOT NULL), min(q.user_id) FILTER (WHERE u.name IS NOT NULL)
FROM (`+d.query+`) q LEFT JOIN users u ON u.name = q.user_id
WHERE u.name IS NULL OR (`+asColonLocalpart+`)`, hs).Scan(&missing, &exMissing, &asColon, &exAS)
		if err != nil {
			return fmt.Errorf("check the users of %s: %w", d.table, err)
		}
		if missing > 0 {
			r.errorf("%d rows of %s belong to no user in users (e.g. %s): the migration would stop at them; delete them in Synapse", missing, d.table, str(exMissing))
		}
		if asColon > 0 {
			r.errorf("%d rows of %s belong to appservice users with a ':' in their localpart (e.g. %s), which are not migrated: the migration would stop at them; delete them in Synapse", asColon, d.table, str(exAS))
		}
	}
	return nil
}

// checkProviders checks every IdP in use: the Synapse config must define
// it (a warning with ignore_missing_providers) and a MAS provider must map
// it, or its links are refused (dropped, with a warning, with
// drop_links_without_mas_provider).
func checkProviders(ctx context.Context, e *env, tx pgx.Tx, opt checkOptions, r *report) error {
	rows, err := tx.Query(ctx, `SELECT auth_provider, COUNT(*) FROM user_external_ids GROUP BY auth_provider ORDER BY auth_provider`)
	if err != nil {
		return err
	}
	type use struct {
		provider string
		n        int64
	}
	var uses []use
	for rows.Next() {
		var u use
		if err := rows.Scan(&u.provider, &u.n); err != nil {
			rows.Close()
			return err
		}
		uses = append(uses, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	known := e.syn.idpIDs()
	for _, u := range uses {
		if u.provider == "oauth-delegated" {
			continue
		}
		if !known[u.provider] {
			add := r.errorf
			if opt.ignoreMissingProviders {
				add = r.warnf
			}
			add("%d users are linked to IdP %q, which the Synapse config does not define", u.n, u.provider)
		}
		if _, ok := e.providers[u.provider]; !ok {
			if opt.dropUnmappedLinks {
				r.warnf("%d links to IdP %q will be dropped (drop_links_without_mas_provider): no MAS upstream provider has synapse_idp_id %q", u.n, u.provider, u.provider)
			} else {
				r.errorf("%d users are linked to IdP %q, but no MAS upstream provider has synapse_idp_id %q: add one, or set drop_links_without_mas_provider to drop those links", u.n, u.provider, u.provider)
			}
		}
	}
	return nil
}

func firstLineOf(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

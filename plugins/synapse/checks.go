package synapse

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// report collects the findings of synapse.check.
type report struct {
	errors   []string
	warnings []string
	counts   map[string]int64
}

func (r *report) errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *report) warnf(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// checkConfigs compares the Synapse and MAS configs.
func checkConfigs(e *env, ignoreMissing bool, r *report) {
	syn, mas := e.syn, e.mas
	if syn.explicitTrue("enable_registration") {
		r.warnf("Synapse has enable_registration: true; registration moves to MAS (account.password_registration_enabled)")
	}
	if syn.has("user_consent") {
		r.warnf("Synapse has a user_consent section; MAS does not migrate consent, set branding.tos_uri instead")
		if mas.Branding.TOSURI == "" {
			r.warnf("Synapse has user_consent but MAS has no branding.tos_uri")
		}
	}
	for _, k := range []string{"cas_config", "saml2_config", "jwt_config"} {
		if syn.explicitTrue(k, "enabled") {
			r.warnf("Synapse has %s.enabled: MAS does not support it (bridge it through an OIDC provider such as Dex)", k)
		}
	}
	if getBool(syn.raw, true, "password_config", "enabled") && !getBool(syn.raw, true, "password_config", "localdb_enabled") {
		r.warnf("Synapse uses a non-standard password provider plugin (password_config.localdb_enabled: false); its users cannot log in with MAS passwords")
	}
	if syn.explicitTrue("enable_3pid_changes") {
		r.errorf("Synapse has enable_3pid_changes: true, which MAS does not support; remove it")
	}
	if syn.explicitTrue("login_via_existing_session", "enabled") {
		r.errorf("Synapse has login_via_existing_session.enabled, which MAS does not support; disable it")
	}
	if syn.explicitTrue("allow_guest_access") {
		r.errorf("Synapse has allow_guest_access: true, which MAS does not support; disable it")
	}
	if sn := syn.serverName(); sn != e.homeserver {
		r.errorf("Synapse server_name %q differs from MAS matrix.homeserver %q", sn, e.homeserver)
	}
	if syn.explicitTrue("enable_registration_captcha") && mas.Captcha.Service == "" {
		r.warnf("Synapse has enable_registration_captcha but MAS has no captcha.service")
	}
	v1, ok := mas.v1Scheme()
	switch {
	case !ok:
		r.errorf("MAS passwords.schemes has no version 1 scheme; add a bcrypt scheme with version 1 for the Synapse hashes")
	case v1.Algorithm != "bcrypt":
		r.errorf("the MAS version 1 password scheme is %q, not bcrypt, so Synapse's hashes would not verify", v1.Algorithm)
	default:
		if !v1.UnicodeNormalization {
			r.errorf("the MAS version 1 bcrypt scheme needs unicode_normalization: true (Synapse applies NFKC before hashing)")
		}
		secret, err := v1.secretBytes()
		pepper := getString(syn.raw, "password_config", "pepper")
		switch {
		case err != nil:
			r.errorf("%v", err)
		case !bytes.Equal(secret, []byte(pepper)):
			r.errorf("the MAS version 1 scheme's secret differs from Synapse's password_config.pepper")
		}
	}
	for _, bad := range e.badProviders {
		r.errorf("MAS provider id %s is not a ULID", bad)
	}
	_ = ignoreMissing
}

// checkSynapseDB runs the read-only queries on the Synapse database.
func checkSynapseDB(ctx context.Context, e *env, tx pgx.Tx, ignoreMissing bool, r *report) error {
	var n int64
	var example *string
	q := func(sql string, args ...any) error {
		example = nil
		return tx.QueryRow(ctx, sql, args...).Scan(&n, &example)
	}
	if err := q(`SELECT COUNT(1), NULL::text FROM users WHERE is_guest <> 0`); err != nil {
		return err
	}
	if n > 0 {
		r.warnf("%d guest users: they are migrated, but MAS does not support guest access", n)
	}
	if err := q(`SELECT COUNT(1), min(medium) FROM user_threepids WHERE medium <> 'email'`); err != nil {
		return err
	}
	if n > 0 {
		r.warnf("%d third-party ids are not emails (e.g. %s): they go to user_unsupported_third_party_ids", n, str(example))
	}
	if err := q(`SELECT COUNT(1), min(user_id) FROM user_external_ids WHERE auth_provider = 'oauth-delegated'`); err != nil {
		return err
	}
	if n > 0 {
		r.errorf("%d user_external_ids rows have auth_provider 'oauth-delegated' (left by an earlier MAS); delete them: DELETE FROM user_external_ids WHERE auth_provider = 'oauth-delegated'", n)
	}
	if err := q(`SELECT COUNT(1), min(coalesce(name, '(NULL name)')) FROM users WHERE name IS NULL OR creation_ts IS NULL`); err != nil {
		return err
	}
	if n > 0 {
		r.errorf("%d users have a NULL name or creation_ts (e.g. %s): the migration would fail on them", n, str(example))
	}
	if err := q(`SELECT COUNT(1), min(name) FROM users WHERE name IS NOT NULL AND (
  (appservice_id IS NULL AND (strpos(name, ':') = 0 OR substr(name, strpos(name, ':') + 1) <> $1))
  OR (appservice_id IS NOT NULL AND right(name, length($1) + 1) <> ':' || $1))`, e.homeserver); err != nil {
		return err
	}
	if n > 0 {
		r.errorf("%d user ids are not on server %q (e.g. %s): the migration would fail with a wrong server name", n, e.homeserver, str(example))
	}
	if err := q(`SELECT COUNT(1), min(name) FROM users WHERE appservice_id IS NOT NULL
  AND right(name, length($1) + 1) = ':' || $1
  AND strpos(substr(name, 2, length(name) - length($1) - 2), ':') > 0`, e.homeserver); err != nil {
		return err
	}
	if n > 0 {
		r.warnf("%d appservice users have a ':' in their localpart (e.g. %s): they are dropped, and any row of theirs fails the migration", n, str(example))
	}
	if err := q(`SELECT COUNT(1), min(a.user_id) FROM access_tokens a JOIN devices d USING (user_id, device_id)
WHERE d.hidden AND a.puppets_user_id IS NULL`); err != nil {
		return err
	}
	if n > 0 {
		r.warnf("%d access tokens belong to hidden devices (e.g. of %s): they are not migrated", n, str(example))
	}

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
		add := r.errorf
		if ignoreMissing {
			add = r.warnf
		}
		if !known[u.provider] {
			add("%d users are linked to IdP %q, which the Synapse config does not define", u.n, u.provider)
		}
		if _, ok := e.providers[u.provider]; !ok {
			add("%d users are linked to IdP %q, but no MAS upstream provider has synapse_idp_id %q", u.n, u.provider, u.provider)
		}
	}

	est, err := entityTotals(ctx, tx)
	if err != nil {
		return err
	}
	r.counts = est
	return nil
}

// checkMASDB runs the read-only queries on the MAS database.
func checkMASDB(ctx context.Context, e *env, tx pgx.Tx, r *report) error {
	t, err := nonEmptyTable(ctx, e.masDB, tx)
	if err != nil {
		return err
	}
	if t != "" {
		r.errorf("%v", notEmptyError(e.masDB, t).Err)
	}
	idps := make([]string, 0, len(e.providers))
	for idp := range e.providers {
		idps = append(idps, idp)
	}
	sort.Strings(idps)
	var missing []string
	for _, idp := range idps {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM upstream_oauth_providers WHERE upstream_oauth_provider_id = $1", e.providers[idp]).Scan(&one)
		if err == pgx.ErrNoRows {
			missing = append(missing, idp)
		} else if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		r.warnf("MAS providers for %s are not in the MAS database yet: run `mas-cli config sync` before the migration", strings.Join(missing, ", "))
	}
	return nil
}

func str(p *string) string {
	if p == nil {
		return "?"
	}
	return *p
}

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
func checkConfigs(e *env, r *report) {
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
		r.errorf("the MAS version 1 password scheme is %q, not bcrypt, so Synapse's hashes would not verify (MAS's default is argon2id): add a version 1 bcrypt scheme with unicode_normalization: true and Synapse's pepper as secret (synapse.export_config writes it)", v1.Algorithm)
	case !v1.UnicodeNormalization:
		r.errorf("the MAS version 1 bcrypt scheme needs unicode_normalization: true (Synapse applies NFKC before hashing)")
	}
	// The pepper is compared whatever the scheme: with MAS's default
	// (argon2id, no secret) a peppered Synapse needs both fixed.
	if ok {
		secret, err := v1.secretBytes()
		pepper := getString(syn.raw, "password_config", "pepper")
		switch {
		case err != nil:
			r.errorf("%v", err)
		case !bytes.Equal(secret, []byte(pepper)) && secret == nil:
			r.errorf("Synapse peppers its password hashes (password_config.pepper) but the MAS version 1 scheme has no secret: set it to the same pepper, or no migrated password will verify")
		case !bytes.Equal(secret, []byte(pepper)):
			r.errorf("the MAS version 1 scheme's secret differs from Synapse's password_config.pepper: no migrated password would verify")
		}
	}
	for _, bad := range e.badProviders {
		r.errorf("MAS provider id %s is not a ULID", bad)
	}
}

// checkMASDB runs the read-only queries on the MAS database.
func checkMASDB(ctx context.Context, e *env, tx pgx.Tx, r *report) error {
	if err := checkLock(ctx, tx, r); err != nil {
		return err
	}
	tables, err := checkMASSchema(ctx, tx, r)
	if err != nil {
		return err
	}
	if !tables {
		return nil
	}
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

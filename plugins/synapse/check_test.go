package synapse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

func strs(v cty.Value) []string {
	var out []string
	for _, x := range v.AsValueSlice() {
		out = append(out, x.AsString())
	}
	return out
}

// hasOne reports whether exactly one message contains sub.
func hasOne(msgs []string, sub string) bool {
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n == 1
}

func TestCheckCleanSetup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
	w.syn(`INSERT INTO user_external_ids VALUES ('oidc-github', 'gh-1', '@alice:example.com')`)
	startMAS := w.state()
	res, err := w.check(nil)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if e, wn := strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings")); len(e)+len(wn) != 0 {
		t.Errorf("errors %q warnings %q, want none", e, wn)
	}
	counts := res.Outputs.GetAttr("counts").AsValueMap()
	for _, e := range entities {
		if _, ok := counts[e]; !ok {
			t.Errorf("no count for %s", e)
		}
	}
	diffState(t, "after check", startMAS, w.state())
}

func TestCheckConfigRules(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	secret := filepath.Join(t.TempDir(), "pepper")
	if err := os.WriteFile(secret, []byte("pep"), 0o600); err != nil {
		t.Fatal(err)
	}
	bcrypt := func(extra string) string {
		return "passwords:\n  schemes:\n    - version: 1\n      algorithm: bcrypt\n" + extra
	}
	for _, tc := range []struct {
		name, syn, mas  string
		errSub, warnSub string // exactly one error / warning containing it ("" = none at all)
	}{
		{"registration", "enable_registration: true\n", "", "", "enable_registration"},
		{"user consent without tos", "user_consent:\n  version: 1\n", "", "", "no branding.tos_uri"},
		{"cas", "cas_config:\n  enabled: true\n", "", "", "cas_config.enabled"},
		{"saml", "saml2_config:\n  enabled: true\n", "", "", "saml2_config.enabled"},
		{"jwt", "jwt_config:\n  enabled: true\n", "", "", "jwt_config.enabled"},
		{"password provider", "password_config:\n  pepper: pep\n  localdb_enabled: false\n", "", "", "non-standard password provider"},
		{"captcha", "enable_registration_captcha: true\n", "", "", "no captcha.service"},
		{"3pid changes", "enable_3pid_changes: true\n", "", "enable_3pid_changes", ""},
		{"existing session", "login_via_existing_session:\n  enabled: true\n", "", "login_via_existing_session", ""},
		{"guest access", "allow_guest_access: true\n", "", "allow_guest_access", ""},
		{"server name", "server_name: other.org\n", "", `server_name "other.org"`, ""},
		{"default schemes are argon2id", "", "passwords:\n  enabled: true\n", "not bcrypt", ""},
		{"no v1 scheme", "", "passwords:\n  schemes:\n    - version: 2\n      algorithm: argon2id\n", "no version 1 scheme", ""},
		{"unicode normalization", "", bcrypt("      secret: pep\n"), "unicode_normalization", ""},
		{"pepper differs", "", bcrypt("      unicode_normalization: true\n      secret: other\n"), "differs from Synapse's password_config.pepper", ""},
		{"pepper from file", "", bcrypt("      unicode_normalization: true\n      secret_file: " + secret + "\n"), "", ""},
		{"bad provider id", "", "upstream_oauth2:\n  providers:\n    - id: not-a-ulid\n      synapse_idp_id: oidc-x\n", "not a ULID", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w2 := *w
			w2.t = t
			w2.writeConfigs(tc.syn, tc.mas)
			res, err := w2.check(nil)
			if res == nil {
				t.Fatalf("check: %v", err)
			}
			errs, warns := strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings"))
			if tc.errSub == "" {
				if err != nil || len(errs) != 0 {
					t.Errorf("errors %q (%v), want none", errs, err)
				}
			} else {
				if !hasOne(errs, tc.errSub) {
					t.Errorf("errors %q: want one containing %q", errs, tc.errSub)
				}
				wantKind(t, err, sdk.KindConflict, tc.errSub)
			}
			if tc.warnSub == "" && len(warns) != 0 {
				t.Errorf("warnings %q, want none", warns)
			}
			if tc.warnSub != "" && !hasOne(warns, tc.warnSub) {
				t.Errorf("warnings %q: want one containing %q", warns, tc.warnSub)
			}
		})
	}
}

func TestCheckDatabaseRules(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts, is_guest, appservice_id) VALUES
 ('@alice:example.com', 1600000000, 0, NULL), ('@g:example.com', 1, 1, NULL),
 ('@eve:other.org', 1, 0, NULL), ('@nots:example.com', NULL, 0, NULL),
 ('@irc_a:b:example.com', 1, 0, 'irc')`)
	w.syn(`INSERT INTO user_threepids VALUES ('@alice:example.com', 'msisdn', '123', 1, 1)`)
	w.syn(`INSERT INTO user_external_ids VALUES ('oauth-delegated', 'x', '@alice:example.com'),
 ('oidc-gitlab', 'gl', '@alice:example.com'), ('saml', 's', '@alice:example.com')`)
	w.syn(`INSERT INTO devices (user_id, device_id, hidden) VALUES ('@alice:example.com', 'H', true)`)
	w.syn(`INSERT INTO access_tokens (id, user_id, device_id, token) VALUES (1, '@alice:example.com', 'H', 't')`)
	w.exec(w.masURL, `INSERT INTO users (user_id, username, created_at) VALUES (gen_random_uuid(), 'x', now())`)
	w.exec(w.masURL, `DELETE FROM upstream_oauth_providers WHERE issuer LIKE '%google%'`)

	res, err := w.check(nil)
	errs, warns := strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings"))
	for _, sub := range []string{
		"'oauth-delegated'",
		`IdP "oidc-gitlab", which the Synapse config does not define`,
		`no MAS upstream provider has synapse_idp_id "oidc-gitlab"`,
		`IdP "saml", which the Synapse config does not define`,
		"NULL name or creation_ts",
		`not on server "example.com" (e.g. @eve:other.org)`,
		`rows found in at least "users"`,
	} {
		if !hasOne(errs, sub) {
			t.Errorf("errors: want one containing %q in\n%s", sub, strings.Join(errs, "\n"))
		}
	}
	for _, sub := range []string{"1 guest users", "not emails (e.g. msisdn)", "':' in their localpart (e.g. @irc_a:b:example.com)",
		"belong to hidden devices", "oidc-google are not in the MAS database yet"} {
		if !hasOne(warns, sub) {
			t.Errorf("warnings: want one containing %q in\n%s", sub, strings.Join(warns, "\n"))
		}
	}
	wantKind(t, err, sdk.KindConflict, "check errors")

	// With ignore_missing_providers the provider findings are warnings.
	res, _ = w.check(map[string]cty.Value{"ignore_missing_providers": cty.True})
	errs, warns = strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings"))
	if !hasOne(errs, `no MAS upstream provider has synapse_idp_id "oidc-gitlab"`) || hasOne(errs, "which the Synapse config does not define") ||
		!hasOne(warns, `IdP "saml", which the Synapse config`) {
		t.Errorf("ignore_missing_providers: errors %q warnings %q", errs, warns)
	}
	// drop_links_without_mas_provider: links whose IdP no MAS provider maps
	// are dropped, counted in a warning.
	res, _ = w.check(map[string]cty.Value{"drop_links_without_mas_provider": cty.True})
	errs, warns = strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings"))
	if hasOne(errs, "no MAS upstream provider") || !hasOne(warns, `1 links to IdP "oidc-gitlab" will be dropped`) {
		t.Errorf("drop_links_without_mas_provider: errors %q warnings %q", errs, warns)
	}
}

func TestCheckSQLiteConfig(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := filepath.Join(t.TempDir(), "extra.yaml")
	if err := os.WriteFile(p, []byte("database:\n  name: sqlite3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := w.inputs(map[string]cty.Value{"synapse_config": cty.ListVal([]cty.Value{cty.StringVal(w.synConfig), cty.StringVal(p)})})
	_, err := sdk.Local(New()).Apply(t.Context(), "check", &sdk.ApplyRequest{Inputs: in}, &recorder{})
	wantKind(t, err, sdk.KindInvalid, "sqlite3")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"check", "migrate", "export_config"} {
		in := map[string]cty.Value{"synapse_config": cty.ListValEmpty(cty.String)}
		if action != "export_config" {
			in["mas_config"] = cty.StringVal("")
		}
		d, err := sdk.Local(New()).Validate(t.Context(), action, cty.ObjectVal(in))
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if action == "export_config" {
			want = 1
		}
		if len(d) != want || !d.HasErrors() || d[0].Path[0] != "synapse_config" {
			t.Errorf("%s: diagnostics %+v", action, d)
		}
		// Unknown values pass.
		in["synapse_config"] = cty.UnknownVal(cty.List(cty.String))
		if d, _ := sdk.Local(New()).Validate(t.Context(), action, cty.ObjectVal(in)); len(d) > want-1 {
			t.Errorf("%s with unknown synapse_config: %+v", action, d)
		}
	}
}

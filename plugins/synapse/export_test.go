package synapse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"github.com/runbookdev/runbook/sdk"
)

func TestExportConfig(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.writeConfigs("oidc_providers:\n"+
		"  - idp_id: github\n    idp_name: GitHub\n    issuer: https://github.example\n    client_id: gh\n    client_secret: gh-secret\n"+
		"    client_auth_method: client_secret_post\n    scopes: [openid, profile]\n    pkce_method: always\n"+
		"    user_mapping_provider:\n      config:\n        localpart_template: \"{{ user.preferred_username }}\"\n        subject_claim: id\n"+
		"  - idp_id: google\n    issuer: https://google.example\n    client_id: gg\n    discover: false\n"+
		"saml2_config:\n  enabled: true\n", "")
	res, _, err := sdkApply(t, "export_config", cty.ObjectVal(map[string]cty.Value{
		"synapse_config": cty.ListVal([]cty.Value{cty.StringVal(w.synConfig), cty.StringVal(w.synExtra)}),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !sdk.SchemaOf(New()).Actions["export_config"].Output("yaml").Sensitive {
		t.Errorf("yaml output must be sensitive")
	}
	var doc exportDoc
	if err := yaml.Unmarshal([]byte(res.Outputs.GetAttr("yaml").AsString()), &doc); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]masSchemeOut{{1, "bcrypt", true, "pep"}, {2, "argon2id", false, ""}}, doc.Passwords.Schemes); d != "" {
		t.Errorf("schemes:\n%s", d)
	}
	want := []masProviderOut{{
		ID: stableID("oidc-github"), SynapseIdpID: "oidc-github", HumanName: "GitHub", Issuer: "https://github.example",
		ClientID: "gh", ClientSecret: "gh-secret", TokenEndpointAuthMethod: "client_secret_post", Scope: "openid profile",
		PKCEMethod: "always", ClaimsImports: map[string]claimImport{
			"localpart": {Action: "require", Template: "{{ user.preferred_username }}"},
			"subject":   {Template: "{{ user.id }}"},
		},
	}, {
		ID: stableID("oidc-google"), SynapseIdpID: "oidc-google", Issuer: "https://google.example", ClientID: "gg",
		TokenEndpointAuthMethod: "client_secret_basic", Scope: "openid", DiscoveryMode: "disabled",
	}}
	if d := cmp.Diff(want, doc.UpstreamOAuth2.Providers); d != "" {
		t.Errorf("providers:\n%s", d)
	}
	if warns := strs(res.Outputs.GetAttr("warnings")); len(warns) != 1 || !strings.Contains(warns[0], "saml2_config") {
		t.Errorf("warnings %q", warns)
	}

	// The exported sections pass the checks, except for providers not
	// synced into MAS yet.
	masCfg := "matrix:\n  homeserver: example.com\ndatabase:\n  uri: \"" + w.masURL + "\"\n" + res.Outputs.GetAttr("yaml").AsString()
	w.masConfig = filepath.Join(t.TempDir(), "mas.yaml")
	if err := os.WriteFile(w.masConfig, []byte(masCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cres, err := w.check(nil)
	if err != nil {
		t.Fatalf("check with the exported config: %v", err)
	}
	if warns := strs(cres.Outputs.GetAttr("warnings")); !hasOne(warns, "not in the MAS database yet") {
		t.Errorf("warnings %q", warns)
	}
}

func sdkApply(t *testing.T, action string, in cty.Value) (*sdk.Result, *recorder, error) {
	rec := &recorder{}
	res, err := sdk.Local(New()).Apply(t.Context(), action, &sdk.ApplyRequest{Inputs: in}, rec)
	return res, rec, err
}

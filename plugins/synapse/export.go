package synapse

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"github.com/runbookdev/runbook/sdk"
)

// exportAction turns Synapse's password and OIDC settings into a starting
// MAS `passwords` and `upstream_oauth2` section.
type exportAction struct{}

var _ sdk.Action = (*exportAction)(nil)

type exportInputs struct {
	SynapseConfig []string `cty:"synapse_config"`
}

func (a *exportAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "export_config",
		Description: "Read Synapse's config files and produce the MAS `passwords` and `upstream_oauth2` sections that match them " +
			"(bcrypt version 1 with normalization and Synapse's pepper, argon2id version 2, one provider per OIDC provider with its synapse_idp_id).",
		Inputs: []sdk.Attribute{commonInputAttrs[0]},
		Outputs: []sdk.Attribute{
			{Name: "yaml", Type: cty.String, Sensitive: true, Description: "The MAS config sections, as YAML (holds the pepper and client secrets)."},
			{Name: "providers", Type: cty.Number, Description: "How many upstream providers were exported."},
			{Name: "warnings", Type: cty.List(cty.String), Description: "Settings that could not be carried over."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

type masSchemeOut struct {
	Version              int    `yaml:"version"`
	Algorithm            string `yaml:"algorithm"`
	UnicodeNormalization bool   `yaml:"unicode_normalization,omitempty"`
	Secret               string `yaml:"secret,omitempty"`
}

type claimImport struct {
	Action   string `yaml:"action,omitempty"`
	Template string `yaml:"template,omitempty"`
}

type masProviderOut struct {
	ID                      string                 `yaml:"id"`
	SynapseIdpID            string                 `yaml:"synapse_idp_id"`
	HumanName               string                 `yaml:"human_name,omitempty"`
	Issuer                  string                 `yaml:"issuer,omitempty"`
	ClientID                string                 `yaml:"client_id"`
	ClientSecret            string                 `yaml:"client_secret,omitempty"`
	TokenEndpointAuthMethod string                 `yaml:"token_endpoint_auth_method"`
	Scope                   string                 `yaml:"scope"`
	DiscoveryMode           string                 `yaml:"discovery_mode,omitempty"`
	PKCEMethod              string                 `yaml:"pkce_method,omitempty"`
	AuthorizationEndpoint   string                 `yaml:"authorization_endpoint,omitempty"`
	TokenEndpoint           string                 `yaml:"token_endpoint,omitempty"`
	JWKSURI                 string                 `yaml:"jwks_uri,omitempty"`
	UserinfoEndpoint        string                 `yaml:"userinfo_endpoint,omitempty"`
	ClaimsImports           map[string]claimImport `yaml:"claims_imports,omitempty"`
}

type exportDoc struct {
	Passwords struct {
		Enabled bool           `yaml:"enabled"`
		Schemes []masSchemeOut `yaml:"schemes"`
	} `yaml:"passwords"`
	UpstreamOAuth2 struct {
		Providers []masProviderOut `yaml:"providers"`
	} `yaml:"upstream_oauth2"`
}

func (a *exportAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in exportInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	syn, err := loadSynapseConfig(in.SynapseConfig)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the synapse_config paths", "%v", err)
	}
	doc, warnings := exportConfig(syn)
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInternal, false, "", "encode YAML: %v", err)
	}
	for _, w := range warnings {
		ev.Log(sdk.LevelWarn, w)
	}
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"yaml":      cty.StringVal(string(b)),
		"providers": cty.NumberIntVal(int64(len(doc.UpstreamOAuth2.Providers))),
		"warnings":  strList(warnings),
	})}, nil
}

// exportConfig builds the MAS sections from a Synapse config.
func exportConfig(syn *synapseConfig) (*exportDoc, []string) {
	var warnings []string
	doc := &exportDoc{}
	doc.Passwords.Enabled = getBool(syn.raw, true, "password_config", "enabled") && getBool(syn.raw, true, "password_config", "localdb_enabled")
	doc.Passwords.Schemes = []masSchemeOut{
		{Version: 1, Algorithm: "bcrypt", UnicodeNormalization: true, Secret: getString(syn.raw, "password_config", "pepper")},
		{Version: 2, Algorithm: "argon2id"},
	}
	var providers []map[string]any
	if oc, ok := syn.raw["oidc_config"].(map[string]any); ok && getBool(oc, true, "enabled") && getString(oc, "issuer") != "" {
		providers = append(providers, oc)
	}
	if list, ok := syn.raw["oidc_providers"].([]any); ok {
		for _, p := range list {
			if pm, ok := p.(map[string]any); ok {
				providers = append(providers, pm)
			}
		}
	}
	for _, p := range providers {
		out, w := exportProvider(p)
		doc.UpstreamOAuth2.Providers = append(doc.UpstreamOAuth2.Providers, out)
		warnings = append(warnings, w...)
	}
	for _, k := range []string{"saml2_config", "cas_config", "jwt_config"} {
		if syn.explicitTrue(k, "enabled") {
			warnings = append(warnings, k+" cannot be exported: MAS only speaks OIDC upstream (bridge it through an OIDC provider such as Dex)")
		}
	}
	return doc, warnings
}

// stableID derives a provider id (a ULID) from its Synapse IdP id, so that
// exporting again gives the same ids.
func stableID(idpID string) string {
	sum := sha256.Sum256([]byte("runbook synapse provider " + idpID))
	var id ulid.ULID
	copy(id[:], sum[:16])
	return id.String()
}

func exportProvider(p map[string]any) (masProviderOut, []string) {
	var warnings []string
	idp := getString(p, "idp_id")
	if idp == "" {
		idp = "oidc"
	}
	if idp != "oidc" {
		idp = "oidc-" + idp
	}
	out := masProviderOut{
		ID:                    stableID(idp),
		SynapseIdpID:          idp,
		HumanName:             getString(p, "idp_name"),
		Issuer:                getString(p, "issuer"),
		ClientID:              getString(p, "client_id"),
		ClientSecret:          getString(p, "client_secret"),
		AuthorizationEndpoint: getString(p, "authorization_endpoint"),
		TokenEndpoint:         getString(p, "token_endpoint"),
		JWKSURI:               getString(p, "jwks_uri"),
		UserinfoEndpoint:      getString(p, "userinfo_endpoint"),
	}
	if getString(p, "client_secret_path") != "" {
		warnings = append(warnings, fmt.Sprintf("%s: client_secret_path is not exported; set client_secret in MAS", idp))
	}
	switch m := getString(p, "client_auth_method"); m {
	case "", "client_secret_basic":
		out.TokenEndpointAuthMethod = "client_secret_basic"
	case "client_secret_post", "none", "private_key_jwt", "client_secret_jwt":
		out.TokenEndpointAuthMethod = m
	default:
		out.TokenEndpointAuthMethod = "client_secret_basic"
		warnings = append(warnings, fmt.Sprintf("%s: unknown client_auth_method %q, using client_secret_basic", idp, m))
	}
	scopes := []string{"openid"}
	if list, ok := p["scopes"].([]any); ok && len(list) > 0 {
		scopes = nil
		for _, s := range list {
			scopes = append(scopes, fmt.Sprint(s))
		}
	}
	out.Scope = strings.Join(scopes, " ")
	if !getBool(p, true, "discover") {
		out.DiscoveryMode = "disabled"
	} else if getBool(p, false, "skip_verification") {
		out.DiscoveryMode = "insecure"
	}
	switch m := getString(p, "pkce_method"); m {
	case "always", "never", "auto":
		out.PKCEMethod = m
	}
	imports := map[string]claimImport{}
	if t := getString(p, "user_mapping_provider", "config", "localpart_template"); t != "" {
		imports["localpart"] = claimImport{Action: "require", Template: t}
	}
	if t := getString(p, "user_mapping_provider", "config", "display_name_template"); t != "" {
		imports["displayname"] = claimImport{Action: "suggest", Template: t}
	}
	if t := getString(p, "user_mapping_provider", "config", "email_template"); t != "" {
		imports["email"] = claimImport{Action: "suggest", Template: t}
	}
	if c := getString(p, "user_mapping_provider", "config", "subject_claim"); c != "" {
		imports["subject"] = claimImport{Template: "{{ user." + c + " }}"}
	}
	if len(imports) > 0 {
		out.ClaimsImports = imports
	}
	return out, warnings
}

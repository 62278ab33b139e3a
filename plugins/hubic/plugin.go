// Package hubic is the runbook plugin for HubiC-style accounts: an OAuth2
// API that hands out OpenStack Swift credentials. hubic.authorize gets a
// refresh token (authorization code flow), hubic.credentials turns it into
// a Swift storage URL and token for the swift plugin's actions, and
// hubic.usage reads the space used. gateway.go serves Swift v1.0 auth
// backed by the API, for unmodified Swift clients (`runbook serve
// hubic-gateway`).
package hubic

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// New returns the hubic plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "hubic",
		Version: Version,
		Actions: []sdk.Action{authorizeAction{}, credentialsAction{}, usageAction{}},
	}
}

// clientInputs name the OAuth client.
type clientInputs struct {
	APIURL       string `cty:"api_url" doc:"API base URL (default https://api.hubic.com)."`
	ClientID     string `cty:"client_id" runbook:"required" doc:"OAuth client id of the application."`
	ClientSecret string `cty:"client_secret" runbook:"required,sensitive" doc:"OAuth client secret; never printed."`
}

func (c clientInputs) config() hubicapi.Config {
	return hubicapi.Config{APIURL: c.APIURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret}
}

// tokenInputs add the refresh token.
type tokenInputs struct {
	APIURL       string `cty:"api_url" doc:"API base URL (default https://api.hubic.com)."`
	ClientID     string `cty:"client_id" runbook:"required" doc:"OAuth client id of the application."`
	ClientSecret string `cty:"client_secret" runbook:"required,sensitive" doc:"OAuth client secret; never printed."`
	RefreshToken string `cty:"refresh_token" runbook:"required,sensitive" doc:"Refresh token (hubic.authorize's output); never printed."`
}

func (t tokenInputs) client() *hubicapi.Client {
	return hubicapi.New(clientInputs{APIURL: t.APIURL, ClientID: t.ClientID, ClientSecret: t.ClientSecret}.config(), t.RefreshToken)
}

// credentialsAction is hubic.credentials.
type credentialsAction struct{}

func (credentialsAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "credentials",
		Description: "Get OpenStack Swift credentials: the refresh token buys an access token, which buys a Swift storage URL and token from /1.0/account/credentials. " +
			"Give the outputs to the swift actions (source_storage_url, source_token); a revoked refresh token fails with `auth` at once, never retried. " +
			"Swift tokens can be refused before they expire: for long copies give the swift actions the HubiC inputs instead, so they renew them.",
		Inputs: sdk.MustAttributesOf(tokenInputs{}),
		Outputs: []sdk.Attribute{
			{Name: "storage_url", Type: cty.String, Description: "The Swift endpoint, e.g. https://lb1.hubic.ovh.net/v1/AUTH_…"},
			{Name: "token", Type: cty.String, Sensitive: true, Description: "The Swift token (X-Auth-Token)."},
			{Name: "expires", Type: cty.String, Description: "When the token expires (RFC 3339), as the API says."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (credentialsAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in tokenInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	cr, err := in.client().Credentials(ctx)
	if err != nil {
		return nil, err
	}
	exp := ""
	if !cr.Expires.IsZero() {
		exp = cr.Expires.UTC().Format(time.RFC3339)
		ev.Log(sdk.LevelInfo, fmt.Sprintf("Swift credentials for %s, valid until %s", cr.Endpoint, exp))
	}
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"storage_url": cty.StringVal(cr.Endpoint), "token": cty.StringVal(cr.Token), "expires": cty.StringVal(exp),
	})}, nil
}

// usageAction is hubic.usage.
type usageAction struct{}

func (usageAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "usage",
		Description: "Read the account's used space and quota from /1.0/account/usage (needs the usage.r scope).",
		Inputs:      sdk.MustAttributesOf(tokenInputs{}),
		Outputs: []sdk.Attribute{
			{Name: "used", Type: cty.Number, Description: "Bytes used."},
			{Name: "quota", Type: cty.Number, Description: "Bytes allowed."},
			{Name: "free", Type: cty.Number, Description: "quota - used."},
			{Name: "used_human", Type: cty.String, Description: "Bytes used, e.g. \"12.3 GB\", for approvals."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (usageAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in tokenInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	u, err := in.client().Usage(ctx)
	if err != nil {
		return nil, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s used of %s", humanBytes(u.Used), humanBytes(u.Quota)))
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"used": cty.NumberIntVal(u.Used), "quota": cty.NumberIntVal(u.Quota), "free": cty.NumberIntVal(u.Quota - u.Used),
		"used_human": cty.StringVal(humanBytes(u.Used)),
	})}, nil
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

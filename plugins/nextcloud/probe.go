package nextcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// probeAction is nextcloud.probe.
type probeAction struct{}

var (
	_ sdk.Action    = probeAction{}
	_ sdk.Validator = probeAction{}
)

func (probeAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "probe",
		Description: "Check the credentials with the OCS user endpoint (GET /ocs/v2.php/cloud/user) and report the DAV user id, display name and quota. " +
			"A 401 or 403 fails at once and is never retried (Nextcloud throttles failed logins); a 503 (maintenance) is retryable.",
		Inputs: []sdk.Attribute{
			{Name: "url", Type: cty.String, Required: true, Description: "Root URL of the server, e.g. https://cloud.example.net."},
			{Name: "login", Type: cty.String, Required: true, Description: "Login name (may differ from the user id, e.g. an e-mail address)."},
			{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "Password or app password; never printed."},
		},
		Outputs: []sdk.Attribute{
			{Name: "user_id", Type: cty.String, Description: "The user id DAV paths need (/remote.php/dav/files/USER_ID)."},
			{Name: "display_name", Type: cty.String, Description: "The user's display name."},
			{Name: "email", Type: cty.String, Description: "The user's e-mail address, if set."},
			{Name: "quota_used", Type: cty.Number, Description: "Bytes used."},
			{Name: "quota_free", Type: cty.Number, Description: "Bytes free (negative: unknown or unlimited)."},
			{Name: "quota_total", Type: cty.Number, Description: "Quota in bytes (negative: unlimited)."},
			{Name: "dav_url", Type: cty.String, Description: "URL of the user's files: ROOT/remote.php/dav/files/USER_ID."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (probeAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateConn(in, "")
}

// ocsUser is data of the OCS cloud/user answer.
type ocsUser struct {
	ID          string `json:"id"`
	DisplayName string `json:"display-name"`
	Email       string `json:"email"`
	Quota       struct {
		Free  json.Number `json:"free"`
		Used  json.Number `json:"used"`
		Total json.Number `json:"total"`
	} `json:"quota"`
}

// probeUser asks the OCS user endpoint who the credentials are. It sends
// the request once: a failed login must not be repeated.
func probeUser(ctx context.Context, c *Client) (*ocsUser, error) {
	resp, err := c.Do(ctx, Request{Method: "GET", Path: "/ocs/v2.php/cloud/user",
		Header: http.Header{"Ocs-Apirequest": {"true"}, "Accept": {"application/json"}}, NoRetry: true})
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", c.Host(), err)
	}
	defer resp.Body.Close()
	var env struct {
		OCS struct {
			Meta struct {
				Status     string `json:"status"`
				StatusCode int    `json:"statuscode"`
				Message    string `json:"message"`
			} `json:"meta"`
			Data ocsUser `json:"data"`
		} `json:"ocs"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, sdk.Errorf(sdk.KindUnreachable, true, "retry", "probe %s: read answer: %v", c.Host(), err)
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check that the URL is the Nextcloud root (where /ocs and /remote.php live)",
			"probe %s: the answer is not OCS JSON (HTTP %d): %s", c.Host(), resp.StatusCode, sanitizeBody(b))
	}
	if m := env.OCS.Meta; m.StatusCode != 200 && m.StatusCode != 100 || env.OCS.Data.ID == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "see the server's answer",
			"probe %s: OCS status %d %s %s", c.Host(), m.StatusCode, m.Status, m.Message)
	}
	return &env.OCS.Data, nil
}

func numOr(n json.Number, def int64) int64 {
	if n == "" {
		return def
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return int64(f)
	}
	return def
}

func (a probeAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	u, err := probeUser(ctx, c)
	if err != nil {
		return nil, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: user id %s (%s)", c.Host(), u.ID, u.DisplayName))
	out := struct {
		UserID      string `cty:"user_id"`
		DisplayName string `cty:"display_name"`
		Email       string `cty:"email"`
		QuotaUsed   int64  `cty:"quota_used"`
		QuotaFree   int64  `cty:"quota_free"`
		QuotaTotal  int64  `cty:"quota_total"`
		DavURL      string `cty:"dav_url"`
	}{u.ID, u.DisplayName, u.Email, numOr(u.Quota.Used, 0), numOr(u.Quota.Free, -1), numOr(u.Quota.Total, -3), c.URL(filesRoot(u.ID))}
	v, err := sdk.Encode(a.Schema(), out)
	if err != nil {
		return nil, err
	}
	return &sdk.Result{Outputs: v}, nil
}

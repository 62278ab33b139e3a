package swift

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/sdk"
)

// connAttrs are the inputs naming one Swift account; prefix ("source_",
// "target_") tells the sides of a copy apart. Three ways in: tempauth (v1
// auth URL, user, key), a storage URL and token from another step, or
// HubiC OAuth (client and refresh token), which also re-authenticates.
func connAttrs(prefix, side string) []sdk.Attribute {
	if side != "" {
		side += " "
	}
	return []sdk.Attribute{
		{Name: prefix + "auth_url", Type: cty.String, Description: "Swift v1.0 auth URL of the " + side + "account (tempauth, or a gateway such as `runbook serve hubic-gateway`), used with " + prefix + "user and " + prefix + "key."},
		{Name: prefix + "user", Type: cty.String, Description: "X-Auth-User, e.g. `account:user`."},
		{Name: prefix + "key", Type: cty.String, Sensitive: true, Description: "X-Auth-Key; never printed."},
		{Name: prefix + "storage_url", Type: cty.String, Description: "Storage URL (e.g. hubic.credentials' storage_url), used with " + prefix + "token when no auth URL is given."},
		{Name: prefix + "token", Type: cty.String, Sensitive: true, Description: "Auth token for " + prefix + "storage_url; a refused token fails with `auth` unless HubiC inputs allow getting a new one."},
		{Name: prefix + "hubic_client_id", Type: cty.String, Description: "HubiC OAuth client id: with " + prefix + "hubic_client_secret and " + prefix + "hubic_refresh_token, Swift credentials come from HubiC's API, renewed when Swift refuses them."},
		{Name: prefix + "hubic_client_secret", Type: cty.String, Sensitive: true, Description: "HubiC OAuth client secret."},
		{Name: prefix + "hubic_refresh_token", Type: cty.String, Sensitive: true, Description: "HubiC refresh token (hubic.authorize's output)."},
		{Name: prefix + "hubic_api_url", Type: cty.String, Description: "HubiC API base URL (default https://api.hubic.com)."},
	}
}

// conn is one side's connection inputs.
type conn struct {
	prefix                             string
	AuthURL, User, Key                 string
	StorageURL, Token                  string
	HubicID, HubicSecret, HubicRefresh string
	HubicAPI                           string
}

func connFrom(in cty.Value, prefix string) conn {
	return conn{prefix: prefix,
		AuthURL: ctyx.StringAttr(in, prefix+"auth_url"), User: ctyx.StringAttr(in, prefix+"user"), Key: ctyx.StringAttr(in, prefix+"key"),
		StorageURL: ctyx.StringAttr(in, prefix+"storage_url"), Token: ctyx.StringAttr(in, prefix+"token"),
		HubicID: ctyx.StringAttr(in, prefix+"hubic_client_id"), HubicSecret: ctyx.StringAttr(in, prefix+"hubic_client_secret"),
		HubicRefresh: ctyx.StringAttr(in, prefix+"hubic_refresh_token"), HubicAPI: ctyx.StringAttr(in, prefix+"hubic_api_url"),
	}
}

// given reports whether any way in was given.
func (c conn) given() bool {
	return c.AuthURL != "" || c.StorageURL != "" || c.HubicRefresh != ""
}

// validate reports a missing or half-given way in, at known inputs only.
func validateConn(in cty.Value, prefix string, required bool) sdk.Diagnostics {
	var d sdk.Diagnostics
	known := func(n string) bool { v := ctyx.Attr(in, n); return v.IsKnown() }
	for _, n := range []string{"auth_url", "user", "key", "storage_url", "token", "hubic_refresh_token", "hubic_client_id", "hubic_client_secret"} {
		if !known(prefix + n) {
			return nil // decided at apply time
		}
	}
	c := connFrom(in, prefix)
	switch {
	case c.AuthURL != "":
		if c.User == "" || c.Key == "" {
			d = d.Errorf([]string{prefix + "auth_url"}, "%sauth_url needs %suser and %skey", prefix, prefix, prefix)
		}
	case c.HubicRefresh != "":
		if c.HubicID == "" || c.HubicSecret == "" {
			d = d.Errorf([]string{prefix + "hubic_refresh_token"}, "%shubic_refresh_token needs %shubic_client_id and %shubic_client_secret", prefix, prefix, prefix)
		}
	case c.StorageURL != "":
		if c.Token == "" {
			d = d.Errorf([]string{prefix + "storage_url"}, "%sstorage_url needs %stoken", prefix, prefix)
		}
	case required:
		d = d.Errorf([]string{prefix + "auth_url"}, "give %sauth_url (with user and key), %sstorage_url (with token) or %shubic_refresh_token", prefix, prefix, prefix)
	}
	return d
}

// staticAuth hands ncw/swift a storage URL and token it cannot renew.
type staticAuth struct{ url, token string }

func (a staticAuth) Request(context.Context, *swift.Connection) (*http.Request, error) {
	return nil, nil
}
func (a staticAuth) Response(context.Context, *http.Response) error { return nil }
func (a staticAuth) StorageUrl(bool) string                         { return a.url }
func (a staticAuth) Token() string                                  { return a.token }
func (a staticAuth) CdnUrl() string                                 { return "" }

// transport is shared by every connection of the plugin: keep-alive
// connections survive from one step to the next.
var transport = retryAfterTransport{&http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost:   64,
	IdleConnTimeout:       90 * time.Second,
	ExpectContinueTimeout: 5 * time.Second,
	// Objects are mostly incompressible; and a transparent gzip would
	// hide the bytes whose MD5 is checked.
	DisableCompression: true,
}}

// connect builds an authenticated connection.
func (c conn) connect(ctx context.Context) (*swift.Connection, error) {
	sc := &swift.Connection{Transport: transport, Retries: 3, UserAgent: "runbook-swift/" + Version,
		ConnectTimeout: 15 * time.Second, Timeout: 2 * time.Minute}
	switch {
	case c.AuthURL != "":
		if c.User == "" || c.Key == "" {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "set "+c.prefix+"user and "+c.prefix+"key", "%sauth_url without user or key", c.prefix)
		}
		sc.AuthUrl, sc.UserName, sc.ApiKey, sc.AuthVersion = c.AuthURL, c.User, c.Key, 1
	case c.HubicRefresh != "":
		cl := hubicapi.New(hubicapi.Config{APIURL: c.HubicAPI, ClientID: c.HubicID, ClientSecret: c.HubicSecret}, c.HubicRefresh)
		sc.Auth = &hubicapi.SwiftAuth{Client: cl}
	case c.StorageURL != "":
		if c.Token == "" {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "set "+c.prefix+"token", "%sstorage_url without a token", c.prefix)
		}
		sc.Auth = staticAuth{url: strings.TrimRight(c.StorageURL, "/"), token: c.Token}
	default:
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give "+c.prefix+"auth_url, "+c.prefix+"storage_url or "+c.prefix+"hubic_refresh_token",
			"no %sSwift account given", c.prefix)
	}
	if err := sc.Authenticate(ctx); err != nil {
		return nil, classify(err, "authenticate "+c.describe())
	}
	return sc, nil
}

func (c conn) describe() string {
	switch {
	case c.AuthURL != "":
		return c.User + " at " + c.AuthURL
	case c.HubicRefresh != "":
		return "through HubiC"
	}
	return c.StorageURL
}

// classify turns an ncw/swift error (or a classified one) into a
// classified error naming what failed.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return &sdk.Error{Kind: se.Kind, Retryable: se.Retryable, Hint: se.Hint, Err: fmt.Errorf("%s: %w", what, se.Err)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return sdk.Errorf(sdk.KindCancelled, false, "", "%s: %v", what, err)
	}
	var sw *swift.Error
	if errors.As(err, &sw) {
		switch code := sw.StatusCode; {
		case code == 401:
			return sdk.Errorf(sdk.KindAuth, false, "check the key or token (a token from another step may have expired: get new credentials)", "%s: %v", what, err)
		case code == 403:
			return sdk.Errorf(sdk.KindAuth, false, "the account may not do this: check its roles", "%s: %v", what, err)
		case code == 404:
			return sdk.Errorf(sdk.KindNotFound, false, "check the container and object names", "%s: %v", what, err)
		case code == 409:
			return sdk.Errorf(sdk.KindConflict, true, "", "%s: %v", what, err)
		case code == 413 || code == 507:
			return sdk.Errorf(sdk.KindQuota, false, "the target is over its quota or out of space: free space or raise the quota", "%s: %v", what, err)
		case code == 422:
			return sdk.Errorf(sdk.KindConflict, true, "the bytes did not match their MD5: retry", "%s: %v", what, err)
		case code == 429 || code == 498:
			return sdk.Errorf(sdk.KindQuota, true, "rate limited: retry later", "%s: %v", what, err)
		case code == 408 || code >= 500:
			return sdk.Errorf(sdk.KindUnreachable, true, "check that Swift is up", "%s: %v", what, err)
		case code == 0:
			return sdk.Errorf(sdk.KindAuth, false, "check the auth URL: it answered without a storage URL or token", "%s: %v", what, err)
		}
		return sdk.Errorf(sdk.KindUnknown, false, "", "%s: %v", what, err)
	}
	return sdk.Errorf(sdk.KindUnreachable, true, "check that Swift is up and reachable", "%s: %v", what, err)
}

// kindOf is the kind of a classified error.
func kindOf(err error) sdk.Kind {
	if e := sdk.Classify(err); e != nil {
		return e.Kind
	}
	return ""
}

// strList returns a known list of strings attribute.
func strList(in cty.Value, name string) []string {
	v := ctyx.Attr(in, name)
	if v.IsNull() || !v.IsKnown() || !(v.Type().IsListType() || v.Type().IsSetType() || v.Type().IsTupleType()) {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

// intAttr returns a known number attribute, or def.
func intAttr(in cty.Value, name string, def int) int {
	i, _ := ctyx.IntAttr(in, name, int64(def))
	return int(i)
}

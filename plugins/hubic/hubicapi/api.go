// Package hubicapi is the client of HubiC's OAuth2 API: the authorization
// code flow, refresh tokens, and the two calls that matter for moving data
// out: /1.0/account/credentials (OpenStack Swift endpoint and token) and
// /1.0/account/usage. It also gives ncw/swift an Authenticator that gets
// Swift credentials this way, so Swift clients re-authenticate through
// OAuth when a token is refused.
package hubicapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ncw/swift/v2"
	"golang.org/x/oauth2"

	"github.com/runbookdev/runbook/sdk"
)

// DefaultAPIURL is HubiC's API (the service closed in 2022; compatible
// stand-ins keep its paths).
const DefaultAPIURL = "https://api.hubic.com"

// DefaultScope is what moving data needs: Swift credentials and usage.
// HubiC's scopes are comma-separated.
const DefaultScope = "credentials.r,usage.r"

// Config names an OAuth2 client of the API.
type Config struct {
	APIURL       string // default DefaultAPIURL
	ClientID     string
	ClientSecret string
	RedirectURL  string // for the authorization code flow
	Scope        string // comma-separated; default DefaultScope
	// HTTPClient, if set, makes the requests (tests, proxies).
	HTTPClient *http.Client
}

func (c Config) api() string {
	if c.APIURL == "" {
		return DefaultAPIURL
	}
	return strings.TrimRight(c.APIURL, "/")
}

// OAuth2 is the x/oauth2 configuration: client credentials in a Basic
// header, the scopes as one comma-separated string (x/oauth2 would join a
// list with spaces).
func (c Config) OAuth2() *oauth2.Config {
	scope := c.Scope
	if scope == "" {
		scope = DefaultScope
	}
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		RedirectURL:  c.RedirectURL,
		Scopes:       []string{scope},
		Endpoint: oauth2.Endpoint{
			AuthURL:   c.api() + "/oauth/auth/",
			TokenURL:  c.api() + "/oauth/token/",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
	}
}

func (c Config) context(ctx context.Context) context.Context {
	if c.HTTPClient != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, c.HTTPClient)
	}
	return ctx
}

// Exchange trades an authorization code for tokens.
func (c Config) Exchange(ctx context.Context, code string) (*oauth2.Token, error) {
	tok, err := c.OAuth2().Exchange(c.context(ctx), code)
	if err != nil {
		return nil, classify("exchange the authorization code", err)
	}
	if tok.RefreshToken == "" {
		return nil, sdk.Errorf(sdk.KindAuth, false, "check that the client may use the authorization code grant", "the token endpoint returned no refresh token")
	}
	return tok, nil
}

// Credentials are Swift credentials handed out by the API.
type Credentials struct {
	Token    string    `json:"token"`
	Endpoint string    `json:"endpoint"`
	Expires  time.Time `json:"expires"`
}

// Usage is the account's used and total space, in bytes.
type Usage struct {
	Used  int64 `json:"used"`
	Quota int64 `json:"quota"`
}

// Client calls the API with an access token it gets, and renews, from a
// refresh token. It is safe for concurrent use.
type Client struct {
	cfg Config

	mu      sync.Mutex // guards ts and refresh
	ts      oauth2.TokenSource
	refresh string
	// refused is set once the token endpoint refused the refresh token:
	// every later call fails at once instead of asking again.
	refused error
}

// New returns a client for the refresh token.
func New(cfg Config, refreshToken string) *Client {
	c := &Client{cfg: cfg, refresh: refreshToken}
	c.reset(nil)
	return c
}

// reset drops the current access token (one the API refused).
func (c *Client) reset(tok *oauth2.Token) {
	if tok == nil {
		tok = &oauth2.Token{RefreshToken: c.refresh}
	}
	c.ts = oauth2.ReuseTokenSource(nil, c.cfg.OAuth2().TokenSource(c.cfg.context(context.Background()), tok))
}

// RefreshToken is the refresh token now in use (the API may hand out a
// new one with an access token).
func (c *Client) RefreshToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refresh
}

func (c *Client) token() (*oauth2.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused != nil {
		return nil, c.refused
	}
	tok, err := c.ts.Token()
	if err != nil {
		err = classify("refresh the access token", err)
		if sdk.Classify(err).Kind == sdk.KindAuth {
			c.refused = err
		}
		return nil, err
	}
	if tok.RefreshToken != "" {
		c.refresh = tok.RefreshToken
	}
	return tok, nil
}

// get calls GET path with the access token and decodes the JSON answer.
// An access token the API refuses (401) is renewed once, never more.
func (c *Client) get(ctx context.Context, path string, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.token()
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, "GET", c.cfg.api()+path, nil)
		if err != nil {
			return sdk.Errorf(sdk.KindInvalid, false, "check api_url", "GET %s: %v", path, err)
		}
		tok.SetAuthHeader(req)
		req.Header.Set("Accept", "application/json")
		hc := c.cfg.HTTPClient
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return sdk.Errorf(sdk.KindCancelled, false, "", "GET %s: %v", path, ctx.Err())
			}
			return sdk.Errorf(sdk.KindUnreachable, true, "check that the API is reachable", "GET %s: %v", path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			return sdk.Errorf(sdk.KindUnreachable, true, "", "GET %s: %v", path, err)
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			c.mu.Lock()
			c.reset(nil)
			c.mu.Unlock()
			continue
		case resp.StatusCode/100 != 2:
			return withStatus(apiError(path, resp.Status, resp.StatusCode), resp.StatusCode)
		}
		if err := json.Unmarshal(body, out); err != nil {
			return sdk.Errorf(sdk.KindInternal, false, "check api_url", "GET %s: bad JSON: %v", path, err)
		}
		return nil
	}
}

// apiError classifies a refusal of the API (a status other than 2xx).
func apiError(path, status string, code int) *sdk.Error {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return sdk.Errorf(sdk.KindAuth, false, "check the token's scopes (credentials.r, usage.r), or authorize again with hubic.authorize", "GET %s: %s", path, status)
	case code == http.StatusNotFound:
		return sdk.Errorf(sdk.KindNotFound, false, "check api_url", "GET %s: %s", path, status)
	case code == http.StatusTooManyRequests:
		return sdk.Errorf(sdk.KindQuota, true, "wait and retry", "GET %s: %s", path, status)
	}
	return sdk.Errorf(sdk.KindUnreachable, code >= 500, "", "GET %s: %s", path, status)
}

// StatusError carries the HTTP status the API (its token endpoint or an
// /1.0 call) answered with; the message is the wrapped error's.
type StatusError struct {
	Code int
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// withStatus records the API's HTTP status in e (0: none).
func withStatus(e *sdk.Error, code int) *sdk.Error {
	if code != 0 {
		e.Err = &StatusError{Code: code, Err: e.Err}
	}
	return e
}

// HTTPStatus is the HTTP status the API refused the call with, or 0 when
// it did not answer (unreachable, cancelled, a bad answer).
func HTTPStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// Credentials asks for Swift credentials.
func (c *Client) Credentials(ctx context.Context) (Credentials, error) {
	var raw struct {
		Token    string `json:"token"`
		Endpoint string `json:"endpoint"`
		Expires  string `json:"expires"`
	}
	if err := c.get(ctx, "/1.0/account/credentials", &raw); err != nil {
		return Credentials{}, err
	}
	if raw.Token == "" || raw.Endpoint == "" {
		return Credentials{}, sdk.Errorf(sdk.KindInternal, false, "", "the credentials answer has no token or endpoint")
	}
	cr := Credentials{Token: raw.Token, Endpoint: raw.Endpoint}
	if raw.Expires != "" {
		t, err := time.Parse(time.RFC3339, raw.Expires)
		if err != nil {
			return Credentials{}, sdk.Errorf(sdk.KindInternal, false, "", "the credentials' expiry %q is not RFC 3339: %v", raw.Expires, err)
		}
		cr.Expires = t
	}
	return cr, nil
}

// Usage asks for the space used and the quota.
func (c *Client) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	err := c.get(ctx, "/1.0/account/usage", &u)
	return u, err
}

// classify turns an x/oauth2 error into a classified one: a refused client
// or grant is auth (never retried), the rest unreachable.
func classify(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		var e *sdk.Error
		switch {
		case code == "invalid_client" || status == http.StatusUnauthorized:
			e = sdk.Errorf(sdk.KindAuth, false, "check client_id and client_secret", "%s: the token endpoint refused the client (%d %s)", what, status, code)
		case code == "invalid_grant" || code == "unauthorized_client" || status == http.StatusBadRequest || status == http.StatusForbidden:
			e = sdk.Errorf(sdk.KindAuth, false, "the refresh token was revoked or has expired: run hubic.authorize again", "%s: the token endpoint refused the grant (%d %s)", what, status, code)
		case status == http.StatusTooManyRequests:
			e = sdk.Errorf(sdk.KindQuota, true, "wait and retry", "%s: %d", what, status)
		default:
			e = sdk.Errorf(sdk.KindUnreachable, status >= 500, "check that the API is up", "%s: %d %s", what, status, code)
		}
		return withStatus(e, status)
	}
	return sdk.Errorf(sdk.KindUnreachable, true, "check that the API is reachable", "%s: %v", what, err)
}

// SwiftAuth is an ncw/swift Authenticator getting Swift credentials from
// the API: a Swift connection using it re-authenticates through OAuth
// when a token is refused (401) or about to expire.
type SwiftAuth struct {
	Client *Client

	mu  sync.Mutex
	cur Credentials
	// Err is the last failure of Request, classified.
	err error
}

var (
	_ swift.Authenticator = (*SwiftAuth)(nil)
	_ swift.Expireser     = (*SwiftAuth)(nil)
)

// Request fetches new credentials; it sends no request of its own.
func (a *SwiftAuth) Request(ctx context.Context, _ *swift.Connection) (*http.Request, error) {
	cr, err := a.Client.Credentials(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
	if err != nil {
		return nil, err
	}
	a.cur = cr
	return nil, nil
}

// Response is not called (Request sends nothing).
func (a *SwiftAuth) Response(context.Context, *http.Response) error { return nil }

// StorageUrl is the Swift endpoint.
func (a *SwiftAuth) StorageUrl(bool) string { a.mu.Lock(); defer a.mu.Unlock(); return a.cur.Endpoint }

// Token is the Swift token.
func (a *SwiftAuth) Token() string { a.mu.Lock(); defer a.mu.Unlock(); return a.cur.Token }

// CdnUrl is empty.
func (a *SwiftAuth) CdnUrl() string { return "" }

// Expires is when the Swift token expires (zero if unknown).
func (a *SwiftAuth) Expires() time.Time { a.mu.Lock(); defer a.mu.Unlock(); return a.cur.Expires }

// String names the authenticator in errors.
func (a *SwiftAuth) String() string { return fmt.Sprintf("hubic(%s)", a.Client.cfg.api()) }

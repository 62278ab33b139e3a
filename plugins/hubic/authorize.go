package hubic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/oauth2"

	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/sdk"
)

// DefaultRedirectURI is where the browser is sent back with the code: a
// loopback listener the action starts (the application must be
// registered with this redirect URI).
const DefaultRedirectURI = "http://localhost:53682/"

type authorizeInputs struct {
	APIURL       string `cty:"api_url" doc:"API base URL (default https://api.hubic.com)."`
	ClientID     string `cty:"client_id" runbook:"required" doc:"OAuth client id of the application."`
	ClientSecret string `cty:"client_secret" runbook:"required,sensitive" doc:"OAuth client secret; never printed."`
	Scope        string `cty:"scope" doc:"Comma-separated scopes (default \"credentials.r,usage.r\")."`
	RedirectURI  string `cty:"redirect_uri" doc:"The application's registered redirect URI, on loopback (default http://localhost:53682/): the action listens there for the browser's return."`
	Code         string `cty:"code" runbook:"sensitive" doc:"An authorization code pasted from the browser's address bar (the code parameter), instead of listening; it must come from a URL for the same redirect_uri."`
	Timeout      string `cty:"timeout" doc:"How long to wait for the browser (default \"10m\")."`
}

// authorizeAction is hubic.authorize.
type authorizeAction struct{}

var _ sdk.Validator = authorizeAction{}

func (authorizeAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "authorize",
		Description: "First-time authorization (OAuth2 authorization code flow): logs the URL to open in a browser, receives the code on a loopback listener at redirect_uri (or takes a pasted code), and trades it for a refresh token. " +
			"Keep the refresh token as a sensitive variable for hubic.credentials.",
		Inputs: sdk.MustAttributesOf(authorizeInputs{}),
		Outputs: []sdk.Attribute{
			{Name: "refresh_token", Type: cty.String, Sensitive: true, Description: "The refresh token."},
			{Name: "scope", Type: cty.String, Description: "The scopes asked for."},
		},
	}
}

func (authorizeAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	if v := in.GetAttr("redirect_uri"); v.IsKnown() && !v.IsNull() {
		if _, err := loopbackAddr(v.AsString()); err != nil {
			d = d.Errorf([]string{"redirect_uri"}, "%v", err)
		}
	}
	if v := in.GetAttr("timeout"); v.IsKnown() && !v.IsNull() {
		if _, err := time.ParseDuration(v.AsString()); err != nil {
			d = d.Errorf([]string{"timeout"}, "not a duration: %v", err)
		}
	}
	return d
}

// loopbackAddr is the address to listen on for a loopback redirect URI.
func loopbackAddr(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return "", fmt.Errorf("redirect_uri must be http://localhost:PORT/ or http://127.0.0.1:PORT/")
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
	default:
		return "", fmt.Errorf("redirect_uri must be on loopback, not %s", u.Hostname())
	}
	return net.JoinHostPort(u.Hostname(), u.Port()), nil
}

func (a authorizeAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in authorizeInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if d := a.Validate(ctx, req.Inputs); d.HasErrors() {
		return nil, d.Err()
	}
	if in.RedirectURI == "" {
		in.RedirectURI = DefaultRedirectURI
	}
	if in.Scope == "" {
		in.Scope = hubicapi.DefaultScope
	}
	timeout := 10 * time.Minute
	if in.Timeout != "" {
		timeout, _ = time.ParseDuration(in.Timeout)
	}
	cfg := hubicapi.Config{APIURL: in.APIURL, ClientID: in.ClientID, ClientSecret: in.ClientSecret, RedirectURL: in.RedirectURI, Scope: in.Scope}
	code := in.Code
	if code == "" {
		var err error
		if code, err = receiveCode(ctx, cfg, timeout, ev); err != nil {
			return nil, err
		}
	}
	tok, err := cfg.Exchange(ctx, code)
	if err != nil {
		return nil, err
	}
	ev.Log(sdk.LevelInfo, "authorized: keep the refresh_token output as a sensitive variable")
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"refresh_token": cty.StringVal(tok.RefreshToken), "scope": cty.StringVal(in.Scope),
	})}, nil
}

// receiveCode logs the authorization URL and waits for the browser to
// come back to the loopback listener with the code (and our state).
func receiveCode(ctx context.Context, cfg hubicapi.Config, timeout time.Duration, ev sdk.Events) (string, error) {
	addr, err := loopbackAddr(cfg.RedirectURL)
	if err != nil {
		return "", sdk.Errorf(sdk.KindInvalid, false, "", "%v", err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", sdk.Errorf(sdk.KindConflict, false, "free the port, or paste the code with the code input", "listen on %s for the redirect: %v", addr, err)
	}
	defer l.Close()
	var b [16]byte
	_, _ = rand.Read(b[:])
	state := hex.EncodeToString(b[:])
	authURL := cfg.OAuth2().AuthCodeURL(state, oauth2.AccessTypeOffline)
	ev.Log(sdk.LevelInfo, "open this URL in a browser and allow access: "+authURL)

	type answer struct {
		code string
		err  error
	}
	got := make(chan answer, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("state") != state:
			http.Error(w, "unexpected state: start again", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			http.Error(w, "authorization refused: "+q.Get("error"), http.StatusForbidden)
			select {
			case got <- answer{err: sdk.Errorf(sdk.KindAuth, false, "allow access in the browser", "authorization refused: %s", q.Get("error"))}:
			default:
			}
			return
		case q.Get("code") == "":
			http.Error(w, "no code", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "runbook got the authorization: you can close this page.")
		select {
		case got <- answer{code: q.Get("code")}:
		default:
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		// Let the browser's page be written before the listener goes.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-got:
		return a.code, a.err
	case <-t.C:
		return "", sdk.Errorf(sdk.KindTimeout, true, "open the logged URL sooner, or paste the code with the code input", "no authorization within %s", timeout)
	case <-ctx.Done():
		return "", sdk.Errorf(sdk.KindCancelled, false, "", "authorization: %v", errors.Join(ctx.Err()))
	}
}

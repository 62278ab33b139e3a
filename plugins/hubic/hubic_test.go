package hubic

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/plugins/hubic/hubictest"
	swiftplugin "github.com/runbookdev/runbook/plugins/swift"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedSwift()
	os.Exit(code)
}

const (
	clientID     = "api_hubic_runbook"
	clientSecret = "client-secret-canary-51f3"
)

// api starts the stand-in API in front of the shared Swift's first
// account.
func api(t *testing.T) (*testenv.Swift, *hubictest.Server) {
	t.Helper()
	s := testenv.SharedSwift(t)
	h := hubictest.New(clientID, clientSecret, hubictest.Swift{AuthURL: s.AuthURL, User: s.Accounts[0].User, Key: s.Accounts[0].Key})
	t.Cleanup(h.Close)
	return s, h
}

func tokenIn(h *hubictest.Server, refresh string) cty.Value {
	return sdktest.Object(map[string]any{"api_url": h.URL, "client_id": clientID, "client_secret": clientSecret, "refresh_token": refresh})
}

func headOK(t *testing.T, storageURL, token string) int {
	t.Helper()
	req, _ := http.NewRequest("HEAD", storageURL, nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCredentialsAndUsage(t *testing.T) {
	t.Parallel()
	s, h := api(t)
	p := sdk.Local(New())
	rt := h.IssueRefreshToken("credentials.r,usage.r")
	res, _ := sdktest.MustApply(t, p, "credentials", tokenIn(h, rt))
	u, tok := res.Outputs.GetAttr("storage_url").AsString(), res.Outputs.GetAttr("token").AsString()
	if u != s.Accounts[0].StorageURL {
		t.Errorf("storage_url = %s", u)
	}
	if code := headOK(t, u, tok); code/100 != 2 {
		t.Errorf("the token does not work with Swift: %d", code)
	}
	exp, err := time.Parse(time.RFC3339, res.Outputs.GetAttr("expires").AsString())
	if err != nil || time.Until(exp) < 30*time.Minute {
		t.Errorf("expires = %v (%v)", exp, err)
	}
	sch, _ := sdktest.Schema(t, p)
	for _, o := range sch.Actions["credentials"].Outputs {
		if o.Name == "token" && !o.Sensitive {
			t.Error("the token output is not sensitive")
		}
	}
	ures, _ := sdktest.MustApply(t, p, "usage", tokenIn(h, rt))
	if q, _ := ures.Outputs.GetAttr("quota").AsBigFloat().Int64(); q != 25_000_000_000 {
		t.Errorf("quota = %d", q)
	}
	// A token without the usage scope cannot read usage.
	_, _, err = sdktest.Apply(t, p, "usage", tokenIn(h, h.IssueRefreshToken("credentials.r")))
	sdktest.AssertKind(t, err, sdk.KindAuth)
}

func TestRefusedRefreshTokenAndClient(t *testing.T) {
	t.Parallel()
	_, h := api(t)
	p := sdk.Local(New())
	rt := h.IssueRefreshToken("credentials.r")
	h.Revoke(rt)
	_, _, err := sdktest.Apply(t, p, "credentials", tokenIn(h, rt))
	sdktest.AssertKind(t, err, sdk.KindAuth)
	if e := sdk.Classify(err); e.Retryable || !strings.Contains(e.Hint, "hubic.authorize") {
		t.Errorf("revoked: retryable=%v hint=%q", e.Retryable, e.Hint)
	}
	if n := h.Calls("/oauth/token/ refresh_token"); n != 1 {
		t.Errorf("the revoked refresh token was tried %d times", n)
	}
	// A client that keeps failing never asks again.
	c := hubicapi.New(hubicapi.Config{APIURL: h.URL, ClientID: clientID, ClientSecret: clientSecret}, rt)
	for i := 0; i < 3; i++ {
		_, _ = c.Credentials(context.Background())
	}
	if n := h.Calls("/oauth/token/ refresh_token"); n != 2 {
		t.Errorf("token endpoint called %d times, want 2", n)
	}
	// A wrong client secret.
	in := sdktest.Object(map[string]any{"api_url": h.URL, "client_id": clientID, "client_secret": "wrong", "refresh_token": h.IssueRefreshToken("credentials.r")})
	_, _, err = sdktest.Apply(t, p, "credentials", in)
	sdktest.AssertKind(t, err, sdk.KindAuth)
	if !strings.Contains(sdk.Classify(err).Hint, "client_secret") {
		t.Errorf("wrong secret hint: %v", sdk.Classify(err).Hint)
	}
}

func TestExpiredAccessTokenRenewedOnce(t *testing.T) {
	t.Parallel()
	_, h := api(t)
	c := hubicapi.New(hubicapi.Config{APIURL: h.URL, ClientID: clientID, ClientSecret: clientSecret}, h.IssueRefreshToken("credentials.r"))
	ctx := context.Background()
	if _, err := c.Credentials(ctx); err != nil {
		t.Fatal(err)
	}
	h.ExpireAccessTokens()
	if _, err := c.Credentials(ctx); err != nil {
		t.Fatalf("after the access token expired: %v", err)
	}
	if n := h.Calls("/oauth/token/ refresh_token"); n != 2 {
		t.Errorf("refreshed %d times, want 2", n)
	}
}

// openURL is an Events that opens the logged authorization URL like a
// browser would (following the redirect to the loopback listener).
type openURL struct {
	sdktest.Recorder
	t *testing.T
}

func (o *openURL) Log(level sdk.Level, msg string) {
	o.Recorder.Log(level, msg)
	if _, u, ok := strings.Cut(msg, "allow access: "); ok {
		go func() {
			resp, err := http.Get(u)
			if err != nil {
				o.t.Errorf("browser: %v", err)
				return
			}
			resp.Body.Close()
		}()
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	_, h := api(t)
	p := sdk.Local(New())
	redirect := "http://127.0.0.1:" + itoa(testenv.FreePort(t)) + "/"
	h.RedirectURI = redirect
	in := sdktest.Object(map[string]any{"api_url": h.URL, "client_id": clientID, "client_secret": clientSecret,
		"redirect_uri": redirect, "timeout": "20s"})
	ev := &openURL{t: t}
	ctx, cancel := sdktest.Context()
	defer cancel()
	res, err := p.Apply(ctx, "authorize", &sdk.ApplyRequest{Inputs: in}, ev)
	if err != nil {
		t.Fatal(err)
	}
	rt := res.Outputs.GetAttr("refresh_token").AsString()
	if _, err := hubicapi.New(hubicapi.Config{APIURL: h.URL, ClientID: clientID, ClientSecret: clientSecret}, rt).Credentials(ctx); err != nil {
		t.Errorf("the new refresh token does not work: %v", err)
	}
	logs := strings.Join(ev.Logs(), "\n")
	if strings.Contains(logs, rt) || strings.Contains(logs, clientSecret) || !strings.Contains(logs, "scope=credentials.r%2Cusage.r") {
		t.Errorf("logs: %s", logs)
	}

	// A pasted code: take one from the authorize endpoint without
	// following the redirect.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "scope": {"credentials.r"}, "response_type": {"code"}, "state": {"x"}}
	resp, err := noFollow.Get(h.URL + "/oauth/auth/?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	in2 := sdktest.Object(map[string]any{"api_url": h.URL, "client_id": clientID, "client_secret": clientSecret,
		"redirect_uri": redirect, "code": loc.Query().Get("code")})
	res2, _ := sdktest.MustApply(t, p, "authorize", in2)
	if res2.Outputs.GetAttr("refresh_token").AsString() == "" {
		t.Error("no refresh token from a pasted code")
	}
	// The code was used: a second exchange is refused.
	_, _, err = sdktest.Apply(t, p, "authorize", in2)
	sdktest.AssertKind(t, err, sdk.KindAuth)
}

// TestSwiftActionsThroughHubic: the swift plugin, given HubiC inputs,
// gets its credentials from the API and renews them when Swift refuses
// them.
func TestSwiftActionsThroughHubic(t *testing.T) {
	s, h := api(t) // not parallel: it expires every Swift token
	rt := h.IssueRefreshToken("credentials.r")
	p := sdk.Local(swiftplugin.New())
	in := sdktest.Object(map[string]any{"hubic_api_url": h.URL, "hubic_client_id": clientID, "hubic_client_secret": clientSecret, "hubic_refresh_token": rt})
	if _, _, err := sdktest.Apply(t, p, "list", in); err != nil {
		t.Fatal(err)
	}
	if err := s.ExpireTokens(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sdktest.Apply(t, p, "list", in); err != nil {
		t.Fatalf("after the Swift token expired: %v", err)
	}
	if n := h.Calls("/1.0/account/credentials"); n < 2 {
		t.Errorf("credentials fetched %d times", n)
	}
}

func TestGatewayWithSwiftCLIAndRclone(t *testing.T) {
	s, h := api(t) // not parallel: it expires every Swift token
	g := &Gateway{Client: hubicapi.New(hubicapi.Config{APIURL: h.URL, ClientID: clientID, ClientSecret: clientSecret}, h.IssueRefreshToken("credentials.r")),
		User: "hubic", Key: "gateway-key"}
	srv := httptest.NewServer(g)
	defer srv.Close()
	if _, err := exec.LookPath("swift"); err != nil {
		testenv.Unavailable(t, "swift CLI: %v", err)
	}
	cont := "gateway-" + itoa(time.Now().UnixNano())
	file := filepath.Join(t.TempDir(), "hello.txt")
	_ = os.WriteFile(file, []byte("hello through the gateway\n"), 0o644)
	swiftCLI := func(key string, args ...string) (string, error) {
		cmd := exec.Command("swift", append([]string{"-A", srv.URL + "/auth/v1.0", "-U", "hubic", "-K", key}, args...)...)
		cmd.Dir = filepath.Dir(file)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := swiftCLI("gateway-key", "upload", cont, "hello.txt"); err != nil {
		t.Fatalf("swift upload: %v\n%s", err, out)
	}
	if out, err := swiftCLI("gateway-key", "list", cont); err != nil || strings.TrimSpace(out) != "hello.txt" {
		t.Fatalf("swift list: %v\n%s", err, out)
	}
	if out, err := swiftCLI("wrong", "list", cont); err == nil {
		t.Errorf("a wrong key was let through:\n%s", out)
	}
	// Swift refuses the cached token: the gateway gets a new one.
	if err := s.ExpireTokens(); err != nil {
		t.Fatal(err)
	}
	if out, err := swiftCLI("gateway-key", "stat", cont); err != nil || !strings.Contains(out, "Objects: 1") {
		t.Fatalf("swift stat after the token expired: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("rclone"); err != nil {
		testenv.Unavailable(t, "rclone: %v", err)
	}
	cmd := exec.Command("rclone", "cat", ":swift:"+cont+"/hello.txt", "--swift-auth", srv.URL+"/auth/v1.0",
		"--swift-user", "hubic", "--swift-key", "gateway-key", "--config", "/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "hello through the gateway\n" {
		t.Fatalf("rclone cat: %v\n%s", err, out)
	}
	_, _ = swiftCLI("gateway-key", "delete", cont)
}

func itoa(n any) string { return fmt.Sprint(n) }

// TestGatewayStatusCodes: the gateway answers as hubic2swiftgate did: 403
// for a missing or wrong user or key, the API's status when the API
// refuses it (400 revoked refresh token, 401 refused client, 403 a token
// without credentials.r), 502 when the API is down, and a revoked refresh
// token is sent to the token endpoint once, never again.
func TestGatewayStatusCodes(t *testing.T) {
	t.Parallel()
	_, h := api(t)
	revoked := h.IssueRefreshToken("credentials.r")
	h.Revoke(revoked)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	gw := func(apiURL, secret, refresh string) *httptest.Server {
		g := &Gateway{Client: hubicapi.New(hubicapi.Config{APIURL: apiURL, ClientID: clientID, ClientSecret: secret}, refresh),
			User: "hubic", Key: "gateway-key"}
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		return srv
	}
	good := gw(h.URL, clientSecret, h.IssueRefreshToken("credentials.r"))
	call := func(srv *httptest.Server, method, path string, hdr map[string]string) *http.Response {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := map[string]string{"X-Auth-User": "hubic", "X-Auth-Key": "gateway-key"}
	for _, tc := range []struct {
		name   string
		srv    *httptest.Server
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"right user and key", good, "GET", "/auth/v1.0", ok, http.StatusNoContent},
		{"other path of the original", good, "GET", "/auth/", ok, http.StatusNoContent},
		{"v1.0 path, POST", good, "POST", "/v1.0", ok, http.StatusNoContent},
		{"unknown path", good, "GET", "/auth/v2.0", ok, http.StatusNotFound},
		{"no headers", good, "GET", "/auth/v1.0", nil, http.StatusForbidden},
		{"no key", good, "GET", "/auth/v1.0", map[string]string{"X-Auth-User": "hubic"}, http.StatusForbidden},
		{"X-Storage-User is not X-Auth-User", good, "GET", "/auth/v1.0", map[string]string{"X-Storage-User": "hubic", "X-Storage-Pass": "gateway-key"}, http.StatusForbidden},
		{"wrong key", good, "GET", "/auth/v1.0", map[string]string{"X-Auth-User": "hubic", "X-Auth-Key": "wrong"}, http.StatusForbidden},
		{"wrong user", good, "GET", "/auth/v1.0", map[string]string{"X-Auth-User": "other", "X-Auth-Key": "gateway-key"}, http.StatusForbidden},
		{"revoked refresh token", gw(h.URL, clientSecret, revoked), "GET", "/auth/v1.0", ok, http.StatusBadRequest},
		{"wrong client secret", gw(h.URL, "wrong", h.IssueRefreshToken("credentials.r")), "GET", "/auth/v1.0", ok, http.StatusUnauthorized},
		{"token without credentials.r", gw(h.URL, clientSecret, h.IssueRefreshToken("usage.r")), "GET", "/auth/v1.0", ok, http.StatusForbidden},
		{"API down", gw(down.URL, clientSecret, "rt-x"), "GET", "/auth/v1.0", ok, http.StatusBadGateway},
	} {
		resp := call(tc.srv, tc.method, tc.path, tc.hdr)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("%s: Cache-Control %q", tc.name, cc)
		}
		hasToken := resp.Header.Get("X-Auth-Token") != "" && resp.Header.Get("X-Storage-Url") != ""
		if hasToken != (tc.want == http.StatusNoContent) {
			t.Errorf("%s: token given = %v", tc.name, hasToken)
		}
		if tc.want == http.StatusNoContent && resp.Header.Get("X-Auth-Token-Expires") != "" {
			t.Errorf("%s: X-Auth-Token-Expires sent", tc.name)
		}
	}
	// The revoked refresh token: asked again and again, the gateway goes
	// to the token endpoint only the first time.
	before := h.Calls("/oauth/token/ refresh_token")
	srv := gw(h.URL, clientSecret, revoked)
	for i := 0; i < 3; i++ {
		if c := call(srv, "GET", "/auth/v1.0", ok).StatusCode; c != http.StatusBadRequest {
			t.Errorf("revoked, call %d: %d", i, c)
		}
	}
	if n := h.Calls("/oauth/token/ refresh_token") - before; n != 1 {
		t.Errorf("the revoked refresh token was sent %d times, want 1", n)
	}
}

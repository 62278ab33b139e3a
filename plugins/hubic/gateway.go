package hubic

import (
	"context"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"

	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
)

// Gateway serves Swift v1.0 authentication (GET /auth/v1.0) backed by the
// OAuth API, as hubic2swiftgate did: a client that sends the configured
// X-Auth-User and X-Auth-Key gets the account's X-Storage-Url and
// X-Auth-Token, so unmodified Swift clients (the swift CLI, rclone's
// swift backend) reach the data. Credentials are cached, and fetched
// again when they expire or Swift refuses the token (the original trusted
// its cache until the expiry, handing a refused token out again). Like
// the original it sends no X-Auth-Token-Expires: clients authenticate
// again on a 401. Once the API refuses the refresh token, the gateway
// never asks the token endpoint again: it answers that refusal's status
// until restarted with a new refresh token.
type Gateway struct {
	Client *hubicapi.Client
	User   string
	Key    string
	// Logf, if set, receives one line per authentication (never a secret).
	Logf func(format string, args ...any)
	// HTTPClient checks cached tokens (default http.DefaultClient).
	HTTPClient *http.Client

	mu  sync.Mutex // guards cur
	cur hubicapi.Credentials
}

func (g *Gateway) logf(format string, args ...any) {
	if g.Logf != nil {
		g.Logf(format, args...)
	}
}

// ServeHTTP answers Swift v1.0 auth at the paths hubic2swiftgate served
// (/auth/v1.0, /auth, /v1.0, each with or without a trailing slash), for
// any method, with its status codes:
//   - 204 with X-Storage-Url and X-Auth-Token (and X-Storage-Token);
//   - 403 when X-Auth-User or X-Auth-Key is missing, or either is wrong;
//   - the API's own status when it refuses the gateway: e.g. 400 for a
//     revoked refresh token (invalid_grant), 401 for a refused client,
//     403 for a token without credentials.r, 5xx when it fails;
//   - 502 when the API cannot be reached (the original answered an
//     invalid status 0 there), 404 for any other path.
//
// Every answer forbids caching, as the original's did.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Expires", "Mon, 1 Jan 2000 00:00:00 GMT")
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate")
	h.Set("Pragma", "no-cache")
	switch r.URL.Path {
	case "/auth/v1.0", "/auth/v1.0/", "/auth", "/auth/", "/v1.0", "/v1.0/":
	default:
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	user, hasUser := header(r, "X-Auth-User")
	key, hasKey := header(r, "X-Auth-Key")
	if !hasUser || !hasKey {
		g.logf("refused authentication without X-Auth-User or X-Auth-Key from %s", r.RemoteAddr)
		http.Error(w, "X-Auth-User and/or X-Auth-Key are missing", http.StatusForbidden)
		return
	}
	if subtle.ConstantTimeCompare([]byte(user), []byte(g.User)) != 1 || subtle.ConstantTimeCompare([]byte(key), []byte(g.Key)) != 1 {
		g.logf("refused authentication for user %q from %s", user, r.RemoteAddr)
		http.Error(w, "Access Denied", http.StatusForbidden)
		return
	}
	cr, err := g.Credentials(r.Context())
	if err != nil {
		g.logf("credentials: %v", err)
		status := hubicapi.HTTPStatus(err)
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		http.Error(w, "cannot get Swift credentials from the API", status)
		return
	}
	h.Set("X-Storage-Url", cr.Endpoint)
	h.Set("X-Auth-Token", cr.Token)
	h.Set("X-Storage-Token", cr.Token)
	w.WriteHeader(http.StatusNoContent)
}

// header returns a request header and whether it was sent at all.
func header(r *http.Request, name string) (string, bool) {
	v, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// Credentials returns the cached credentials while they are valid (not
// expiring within a minute, and accepted by Swift), else new ones.
func (g *Gateway) Credentials(ctx context.Context) (hubicapi.Credentials, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur.Token != "" && (g.cur.Expires.IsZero() || time.Until(g.cur.Expires) > time.Minute) && g.accepted(ctx, g.cur) {
		return g.cur, nil
	}
	cr, err := g.Client.Credentials(ctx)
	if err != nil {
		return hubicapi.Credentials{}, err
	}
	g.cur = cr
	g.logf("new Swift credentials for %s, valid until %s", cr.Endpoint, cr.Expires.UTC().Format(time.RFC3339))
	return cr, nil
}

// accepted asks Swift whether the token still works (a HEAD of the
// account): a client that authenticates again after a 401 must not get
// the refused token back.
func (g *Gateway) accepted(ctx context.Context, cr hubicapi.Credentials) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, cr.Endpoint, nil)
	if err != nil {
		return false
	}
	req.Header.Set("X-Auth-Token", cr.Token)
	hc := g.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return true // Swift unreachable: the token may still be good
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden
}

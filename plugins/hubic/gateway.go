package hubic

import (
	"context"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"

	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/sdk"
)

// Gateway serves Swift v1.0 authentication (GET /auth/v1.0) backed by the
// OAuth API, as hubic2swiftgate did: a client that sends the configured
// X-Auth-User and X-Auth-Key gets the account's X-Storage-Url and
// X-Auth-Token, so unmodified Swift clients (the swift CLI, rclone's
// swift backend) reach the data. Credentials are cached, and fetched
// again when they expire or Swift refuses the token. Like the original it
// sends no X-Auth-Token-Expires: clients authenticate again on a 401.
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

// ServeHTTP answers /auth/v1.0 (and /auth/v1, /v1.0).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/auth/v1.0", "/auth/v1.0/", "/auth/v1", "/v1.0", "/v1.0/":
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	user, key := r.Header.Get("X-Auth-User"), r.Header.Get("X-Auth-Key")
	if user == "" {
		user, key = r.Header.Get("X-Storage-User"), r.Header.Get("X-Storage-Pass")
	}
	if subtle.ConstantTimeCompare([]byte(user), []byte(g.User)) != 1 || subtle.ConstantTimeCompare([]byte(key), []byte(g.Key)) != 1 {
		g.logf("refused authentication for user %q from %s", user, r.RemoteAddr)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	cr, err := g.Credentials(r.Context())
	if err != nil {
		g.logf("credentials: %v", err)
		status := http.StatusBadGateway
		if e := sdk.Classify(err); e.Kind == sdk.KindAuth {
			status = http.StatusServiceUnavailable // the gateway's own authorization is gone
		}
		http.Error(w, "cannot get Swift credentials from the API", status)
		return
	}
	w.Header().Set("X-Storage-Url", cr.Endpoint)
	w.Header().Set("X-Auth-Token", cr.Token)
	w.Header().Set("X-Storage-Token", cr.Token)
	w.WriteHeader(http.StatusNoContent)
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

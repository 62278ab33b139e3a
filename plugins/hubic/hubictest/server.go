// Package hubictest is a stand-in for HubiC's OAuth2 API (the service
// closed in 2022), following what its clients relied on: the authorize
// endpoint, the token endpoint with the client in a Basic header and both
// grants, comma-separated scopes, and /1.0/account/credentials and
// /1.0/account/usage. The credentials point at a real Swift: the token is
// a real tempauth token the stand-in gets with the account's key.
package hubictest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Swift is the account the credentials are for.
type Swift struct {
	AuthURL string // tempauth v1.0
	User    string // account:user
	Key     string
}

// Server is the stand-in. Set fields before the first request.
type Server struct {
	*httptest.Server
	ClientID     string
	ClientSecret string
	// RedirectURI is the registered redirect URI; empty accepts any
	// loopback one.
	RedirectURI string
	Swift       Swift
	// AccessTTL is the access tokens' lifetime (default 1h); CredTTL the
	// credentials' announced lifetime (default 1h).
	AccessTTL time.Duration
	CredTTL   time.Duration
	// Quota is the account's quota in bytes (default 25 GB).
	Quota int64

	// Calls counts requests by path ("/oauth/token/ refresh_token", ...).
	mu       sync.Mutex
	codes    map[string]grant
	access   map[string]grant
	refresh  map[string]string // refresh token → scope
	revoked  map[string]bool
	calls    map[string]int
	cached   struct{ url, token string }
	tokenSeq atomic.Int64
}

type grant struct {
	scope    string
	redirect string
	expires  time.Time
}

// New starts the stand-in for client id and secret and the Swift account.
func New(clientID, clientSecret string, sw Swift) *Server {
	s := &Server{ClientID: clientID, ClientSecret: clientSecret, Swift: sw,
		codes: map[string]grant{}, access: map[string]grant{}, refresh: map[string]string{},
		revoked: map[string]bool{}, calls: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/auth/", s.authorize)
	mux.HandleFunc("/oauth/token/", s.token)
	mux.HandleFunc("/1.0/account/credentials", s.credentials)
	mux.HandleFunc("/1.0/account/usage", s.usage)
	s.Server = httptest.NewServer(mux)
	return s
}

func randomToken(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// IssueRefreshToken hands out a refresh token for scope, as a finished
// authorization would.
func (s *Server) IssueRefreshToken(scope string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := randomToken("rt-")
	s.refresh[t] = scope
	return t
}

// Revoke revokes a refresh token and the access tokens given for it.
func (s *Server) Revoke(refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[refreshToken] = true
	delete(s.refresh, refreshToken)
	s.access = map[string]grant{}
}

// ExpireAccessTokens makes every access token handed out so far expired.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access = map[string]grant{}
}

// Calls returns how many times key was called: a path, or
// "/oauth/token/ GRANT".
func (s *Server) Calls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

func (s *Server) count(key string) {
	s.mu.Lock()
	s.calls[key]++
	s.mu.Unlock()
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) redirectOK(uri string) bool {
	if s.RedirectURI != "" {
		return uri == s.RedirectURI
	}
	u, err := url.Parse(uri)
	return err == nil && u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost")
}

// authorize is the consent page; the stand-in's user always agrees and is
// sent back to the redirect URI with a code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.count("/oauth/auth/")
	q := r.URL.Query()
	if q.Get("client_id") != s.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	if q.Get("response_type") != "code" || !s.redirectOK(q.Get("redirect_uri")) {
		http.Error(w, "bad response_type or redirect_uri", http.StatusBadRequest)
		return
	}
	for _, sc := range strings.Split(q.Get("scope"), ",") {
		switch sc {
		case "credentials.r", "usage.r", "account.r", "getAllLinks.r", "activate.w", "links.drw":
		default:
			http.Error(w, "unknown scope "+sc, http.StatusBadRequest)
			return
		}
	}
	code := randomToken("code-")
	s.mu.Lock()
	s.codes[code] = grant{scope: q.Get("scope"), redirect: q.Get("redirect_uri"), expires: time.Now().Add(10 * time.Minute)}
	s.mu.Unlock()
	to, _ := url.Parse(q.Get("redirect_uri"))
	v := to.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	to.RawQuery = v.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	_ = r.ParseForm()
	grantType := r.PostForm.Get("grant_type")
	s.count("/oauth/token/ " + grantType)
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.ClientID || secret != s.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	var scope, refresh string
	s.mu.Lock()
	switch grantType {
	case "authorization_code":
		g, ok := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		if !ok || time.Now().After(g.expires) || g.redirect != r.PostForm.Get("redirect_uri") {
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "bad or used code")
			return
		}
		scope, refresh = g.scope, randomToken("rt-")
		s.refresh[refresh] = scope
	case "refresh_token":
		refresh = r.PostForm.Get("refresh_token")
		sc, ok := s.refresh[refresh]
		if !ok {
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked or unknown")
			return
		}
		scope = sc
	default:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", grantType)
		return
	}
	ttl := s.AccessTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	at := randomToken(fmt.Sprintf("at%d-", s.tokenSeq.Add(1)))
	s.access[at] = grant{scope: scope, expires: time.Now().Add(ttl)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer",
		"expires_in": int(ttl.Seconds()), "refresh_token": refresh, "scope": scope})
}

// bearer checks the access token and its scope.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, scope string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	g, known := s.access[tok]
	s.mu.Unlock()
	if !ok || !known || time.Now().After(g.expires) {
		oauthError(w, http.StatusUnauthorized, "invalid_token", "expired or unknown token")
		return false
	}
	for _, sc := range strings.Split(g.scope, ",") {
		if sc == scope {
			return true
		}
	}
	oauthError(w, http.StatusForbidden, "insufficient_scope", "needs "+scope)
	return false
}

// swiftAuth returns a valid tempauth token, reusing the last one while
// Swift accepts it.
func (s *Server) swiftAuth() (storageURL, token string, err error) {
	s.mu.Lock()
	c := s.cached
	s.mu.Unlock()
	if c.token != "" {
		req, _ := http.NewRequest("HEAD", c.url, nil)
		req.Header.Set("X-Auth-Token", c.token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return c.url, c.token, nil
			}
		}
	}
	req, _ := http.NewRequest("GET", s.Swift.AuthURL, nil)
	req.Header.Set("X-Auth-User", s.Swift.User)
	req.Header.Set("X-Auth-Key", s.Swift.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", "", fmt.Errorf("swift auth: %s", resp.Status)
	}
	c.url, c.token = resp.Header.Get("X-Storage-Url"), resp.Header.Get("X-Auth-Token")
	s.mu.Lock()
	s.cached = c
	s.mu.Unlock()
	return c.url, c.token, nil
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request) {
	s.count("/1.0/account/credentials")
	if !s.bearer(w, r, "credentials.r") {
		return
	}
	u, tok, err := s.swiftAuth()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	ttl := s.CredTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": tok, "endpoint": u,
		"expires": time.Now().Add(ttl).UTC().Format(time.RFC3339)})
}

// usage reports the Swift account's bytes (the container updater keeps
// them, a few seconds late) and the quota.
func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	s.count("/1.0/account/usage")
	if !s.bearer(w, r, "usage.r") {
		return
	}
	u, tok, err := s.swiftAuth()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req, _ := http.NewRequest("HEAD", u, nil)
	req.Header.Set("X-Auth-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	used, _ := strconv.ParseInt(resp.Header.Get("X-Account-Bytes-Used"), 10, 64)
	quota := s.Quota
	if quota == 0 {
		quota = 25_000_000_000
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int64{"used": used, "quota": quota})
}

package viewer

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// AuthConfig says how users are identified.
type AuthConfig struct {
	// Listen is the address served: anything but loopback needs tokens or
	// client certificates.
	Listen string
	// TokenFile holds one `name:token` per line (# comments): a request
	// with `Authorization: Bearer TOKEN` (or, from a browser, ?token=TOKEN
	// once, kept in a cookie) is user name.
	TokenFile string
	// ClientCerts: the TLS server verifies client certificates; the
	// certificate's common name is the user.
	ClientCerts bool
	// LocalUser is the user on loopback without tokens or certificates
	// (the OS user who started the server).
	LocalUser string
}

// Auth identifies the user of each request and guards forms against
// cross-site requests.
type Auth struct {
	tokens      map[string]string // token → user
	clientCerts bool
	local       string // "" when every request must authenticate
	secret      []byte // keys the CSRF tokens
	secure      bool   // cookies only over TLS
}

// NewAuth reads the token file. Serving anything but loopback without a
// token file or client certificates is refused: anyone who reaches the
// port could read runs and approve steps.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	a := &Auth{clientCerts: cfg.ClientCerts, secret: make([]byte, 32), secure: cfg.ClientCerts}
	if _, err := rand.Read(a.secret); err != nil {
		return nil, err
	}
	if cfg.TokenFile != "" {
		t, err := readTokens(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		a.tokens = t
	}
	if a.tokens == nil && !a.clientCerts {
		if !IsLoopback(cfg.Listen) {
			return nil, fmt.Errorf("refusing to serve on %s without authentication: anyone reaching it could read runs and approve steps; give -token-file or -tls-cert, -tls-key and -client-ca, or listen on 127.0.0.1", cfg.Listen)
		}
		if cfg.LocalUser == "" {
			return nil, errors.New("no local user name to record approvals with")
		}
		a.local = cfg.LocalUser
	}
	return a, nil
}

// IsLoopback reports whether listen (host:port) binds a loopback address
// only.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func readTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	tokens := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, tok, ok := strings.Cut(line, ":")
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		if !ok || name == "" || len(tok) < 16 {
			return nil, fmt.Errorf("token file %s line %d: want name:token with a token of 16 characters or more", path, n)
		}
		tokens[tok] = name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("token file %s has no name:token line", path)
	}
	return tokens, nil
}

// user is who made a request.
type user struct {
	Name string
	// Bearer: authenticated by a header a browser never adds by itself,
	// so no cross-site request can carry it (no CSRF token needed).
	Bearer bool
}

type userKey struct{}

func withUser(ctx context.Context, u *user) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

func userOf(r *http.Request) *user {
	u, _ := r.Context().Value(userKey{}).(*user)
	return u
}

const tokenCookie = "runbook_token"
const sessionCookie = "runbook_session"

func (a *Auth) lookup(tok string) (string, bool) {
	for t, name := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			return name, true
		}
	}
	return "", false
}

// identify returns the request's user, or an error when it must
// authenticate and did not.
func (a *Auth) identify(w http.ResponseWriter, r *http.Request) (*user, error) {
	if a.clientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != "" {
			return &user{Name: cn}, nil
		}
	}
	if a.tokens != nil {
		if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
			if name, ok := a.lookup(strings.TrimPrefix(h, "Bearer ")); ok {
				return &user{Name: name, Bearer: true}, nil
			}
			return nil, errors.New("unknown token")
		}
		if c, err := r.Cookie(tokenCookie); err == nil {
			if name, ok := a.lookup(c.Value); ok {
				return &user{Name: name}, nil
			}
		}
		if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet {
			if name, ok := a.lookup(tok); ok {
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: "/", HttpOnly: true,
					Secure: a.secure, SameSite: http.SameSiteStrictMode})
				return &user{Name: name}, nil
			}
		}
	}
	if a.local != "" {
		return &user{Name: a.local}, nil
	}
	if a.tokens != nil {
		return nil, errors.New("authentication required: send Authorization: Bearer TOKEN, or open the page once with ?token=TOKEN")
	}
	return nil, errors.New("authentication required: a TLS client certificate")
}

// csrfToken returns the form token of the browser session, starting a
// session (a cookie) when there is none.
func (a *Auth) csrfToken(w http.ResponseWriter, r *http.Request) string {
	sid := ""
	if c, err := r.Cookie(sessionCookie); err == nil && len(c.Value) == 32 {
		sid = c.Value
	} else {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		sid = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", HttpOnly: true,
			Secure: a.secure, SameSite: http.SameSiteStrictMode})
	}
	return a.sign(sid)
}

func (a *Auth) sign(sid string) string {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte(sid))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF accepts a state-changing request from a browser only with
// its session's form token and from this server's own pages (Origin, or
// Referer when a browser sends no Origin).
func (a *Auth) checkCSRF(r *http.Request, token string) error {
	if u := userOf(r); u != nil && u.Bearer {
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || token == "" || !hmac.Equal([]byte(a.sign(c.Value)), []byte(token)) {
		return errors.New("missing or wrong form token (reload the page)")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Header.Get("Referer")
	}
	u, err := url.Parse(origin)
	if origin == "" || err != nil || u.Host != r.Host {
		return fmt.Errorf("cross-origin request refused (origin %q, host %q)", origin, r.Host)
	}
	return nil
}

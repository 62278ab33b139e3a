package nextcloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/internal/baseurl"
	"github.com/runbookdev/runbook/sdk"
)

// Client talks to one Nextcloud (or WebDAV) server. It is safe for
// concurrent use. Credentials travel only in the Authorization header,
// never in a URL, so errors built from URLs cannot leak them.
type Client struct {
	root     *url.URL // scheme://host[:port][/prefix], no userinfo, no trailing slash
	login    string
	password string // never printed
	token    string // bearer token (Cozy), never printed; replaces Basic auth
	http     *http.Client

	// retries is how many times a request answered 423, 429, 502, 503 or
	// 504 (or, when idempotent, failing on the network) is sent again;
	// backoff spaces the attempts unless the server sent Retry-After,
	// which is honoured up to maxWait.
	retries int
	backoff backoff.Policy
	maxWait time.Duration
}

// NewClient builds a client for the server root rawURL (the URL Nextcloud
// is served at, e.g. https://cloud.example.net or http://host/nextcloud).
func NewClient(rawURL, login, password string) (*Client, error) {
	u, login, password, ok := baseurl.Parse(rawURL, login, password)
	if !ok {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give the server's root URL, e.g. https://cloud.example.net",
			"invalid Nextcloud URL %q", redactURL(rawURL))
	}
	// The root keeps no escaping as given: String escapes its path anew.
	u.RawPath = ""
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		// Files are copied byte for byte: no transparent decompression.
		DisableCompression: true,
	}
	return &Client{
		root: u, login: login, password: password,
		http:    &http.Client{Transport: tr},
		retries: 5, backoff: backoff.Policy{Base: 500 * time.Millisecond, Max: 30 * time.Second},
		maxWait: 2 * time.Minute,
	}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Host is the server's host, for messages.
func (c *Client) Host() string { return c.root.Host }

// URL is the full URL of a decoded server path ("/remote.php/dav/files/a b"),
// each segment escaped.
func (c *Client) URL(p string) string {
	return c.root.String() + escapePath(p)
}

// escapePath escapes each segment of a decoded path ("#", "%", spaces and
// non-ASCII included), keeping the slashes.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// redactURL removes the password from a URL string.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i > 0 && strings.Contains(raw[:i], "://") {
			return raw[:strings.Index(raw, "://")+3] + "***@" + raw[i+1:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	return u.String()
}

// Request describes one HTTP request; Body is called again for each
// attempt (nil: no body).
type Request struct {
	Method string
	Path   string // decoded server path
	Query  url.Values
	// Raw says Path is already escaped (a CouchDB database name with %2F).
	Raw    bool
	Header http.Header
	Body   func() (io.Reader, error)
	// Length is the body's length (-1 unknown).
	Length int64
	// Idempotent requests are also retried after a network error.
	Idempotent bool
	// NoRetry sends the request once whatever the answer (the probe: a
	// 401 must never be repeated, brute-force protection counts them).
	NoRetry bool
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string // the start of the body, for the operator
	RetryAfter   time.Duration
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// statusOf returns the HTTP status inside err, or 0.
func statusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// retryableStatus are the answers worth sending a request again for:
// locked, rate-limited, and the gateway and maintenance errors.
func retryableStatus(s int) bool {
	switch s {
	case http.StatusLocked, http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout, 425:
		return true
	}
	return false
}

// Do sends the request, retrying what may be retried, and returns a 2xx or
// 207 response (whose body the caller closes) or a classified error.
func (c *Client) Do(ctx context.Context, r Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := c.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, sdk.Errorf(sdk.KindCancelled, false, "", "%s %s: %v", r.Method, r.Path, ctx.Err())
		}
		var he *HTTPError
		isHTTP := errors.As(err, &he)
		retry := !r.NoRetry && attempt <= c.retries &&
			((isHTTP && retryableStatus(he.Status)) || (!isHTTP && r.Idempotent))
		if !retry {
			return nil, classify(err, c.root.Host)
		}
		wait := c.backoff.Delay(attempt)
		if isHTTP && he.RetryAfter > 0 {
			wait = min(he.RetryAfter, c.maxWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, sdk.Errorf(sdk.KindCancelled, false, "", "%s %s: %v", r.Method, r.Path, ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, r Request) (*http.Response, error) {
	var body io.Reader
	if r.Body != nil {
		b, err := r.Body()
		if err != nil {
			return nil, err
		}
		body = b
	}
	// The transport may still read the body after Do returns (when the
	// server answered early): wait until it closed it before the caller
	// looks at what was read.
	var tb *trackedBody
	if body != nil && r.Length != 0 {
		tb = &trackedBody{r: body, done: make(chan struct{})}
		body = tb
	}
	u := c.URL(r.Path)
	if r.Raw {
		u = c.root.String() + r.Path
	}
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	if body != nil {
		req.ContentLength = r.Length
		if r.Length == 0 {
			req.Body = http.NoBody
		}
	}
	if tb != nil {
		defer tb.wait()
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	} else if c.login != "" || c.password != "" {
		req.SetBasicAuth(c.login, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &netError{op: r.Method + " " + r.Path, err: scrubURLError(err)}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	he := &HTTPError{Method: r.Method, Path: r.Path, Status: resp.StatusCode, Body: sanitizeBody(b)}
	he.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	return nil, he
}

// trackedBody is a request body that says when the transport closed it.
type trackedBody struct {
	r    io.Reader
	once sync.Once
	done chan struct{}
}

func (b *trackedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *trackedBody) Close() error {
	b.once.Do(func() { close(b.done) })
	return nil
}

// wait returns once the transport closed the body (it always does).
func (b *trackedBody) wait() {
	select {
	case <-b.done:
	case <-time.After(time.Minute):
	}
}

// netError is a transport failure (connection refused, reset, timeout).
type netError struct {
	op  string
	err error
}

func (e *netError) Error() string { return e.op + ": " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// scrubURLError drops the URL from a *url.Error (it holds no credentials,
// but escaped paths make messages hard to read).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sanitizeBody keeps a readable one-line start of an error body.
func sanitizeBody(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// classify turns an HTTP or network error into a classified sdk error
// with a hint.
func classify(err error, host string) error {
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		var ne *netError
		if errors.As(err, &ne) {
			return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true,
				Hint: fmt.Sprintf("check that %s is up and reachable from here", host), Err: err}
		}
		return err
	}
	switch s := he.Status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return &sdk.Error{Kind: sdk.KindAuth, Hint: fmt.Sprintf("check the login and app password for %s (Settings → Security → Devices & sessions); failed logins are throttled, so do not retry in a loop", host), Err: err}
	case s == http.StatusNotFound:
		return &sdk.Error{Kind: sdk.KindNotFound, Hint: "check the URL, the user id and the path", Err: err}
	case s == http.StatusInsufficientStorage:
		return &sdk.Error{Kind: sdk.KindQuota, Hint: fmt.Sprintf("the account on %s is out of quota (HTTP 507): free space or raise the quota, then resume", host), Err: err}
	case s == http.StatusTooManyRequests:
		return &sdk.Error{Kind: sdk.KindQuota, Retryable: true, Hint: "the server is rate-limiting: retry later or lower the concurrency", Err: err}
	case s == http.StatusLocked:
		return &sdk.Error{Kind: sdk.KindConflict, Retryable: true, Hint: "the file is locked on the server: retry later", Err: err}
	case s == http.StatusConflict || s == http.StatusPreconditionFailed || s == http.StatusMethodNotAllowed:
		return &sdk.Error{Kind: sdk.KindConflict, Hint: "the target already exists or its parent is missing", Err: err}
	case s == http.StatusServiceUnavailable:
		return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true, Hint: fmt.Sprintf("%s is unavailable (maintenance mode?): retry when it is back", host), Err: err}
	case s >= 500:
		return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true, Hint: fmt.Sprintf("%s failed: see its logs", host), Err: err}
	default:
		return &sdk.Error{Kind: sdk.KindInvalid, Hint: "see the server's answer", Err: err}
	}
}

// kindOf is the sdk kind of err ("" when unclassified).
func kindOf(err error) sdk.Kind {
	if err == nil {
		return ""
	}
	return sdk.Classify(err).Kind
}

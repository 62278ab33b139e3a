package couchdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/internal/baseurl"
	"github.com/runbookdev/runbook/sdk"
)

// Client talks to one CouchDB-compatible server. It is safe for concurrent
// use. Credentials travel only in the Authorization header, never in a URL,
// so errors built from request URLs cannot leak them.
type Client struct {
	base     *url.URL // scheme://host[:port][/path], no userinfo
	username string
	password string // never printed; scrubbed from every error message
	http     *http.Client

	// retries is how many times an idempotent request is repeated after a
	// connection error or a 5xx before it gives up; backoff spaces them
	// (the first delay, doubled each time).
	retries int
	backoff backoff.Policy
	// gzip lets the server compress its answers (Accept-Encoding: gzip,
	// decoded transparently), for slow links; off by default.
	gzip bool
}

// NewClient builds a client for rawURL. Credentials may be given apart or
// inside the URL (user:pass@host); the explicit ones win.
func NewClient(rawURL, username, password string) (*Client, error) {
	u, username, password, ok := baseurl.Parse(rawURL, username, password)
	if !ok {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "give the server's base URL, e.g. http://127.0.0.1:5984",
			"invalid CouchDB URL %q", Redact(rawURL))
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
		// A server that accepts a request and never answers (pouchdb-server
		// does so for a database creation by a non-admin) must not hang a
		// step forever; the longest legitimate wait is a big _bulk_docs.
		ResponseHeaderTimeout: 5 * time.Minute,
	}
	return &Client{
		base: u, username: username, password: password,
		http:    &http.Client{Transport: tr},
		retries: 3, backoff: backoff.Policy{Base: 250 * time.Millisecond},
	}, nil
}

// URL is the server's base URL without credentials.
func (c *Client) URL() string { return c.base.String() }

// Name is the server's host and path, for messages: never the URL as
// given (which may be a secret the engine masks whole), never credentials.
func (c *Client) Name() string { return c.base.Host + c.base.EscapedPath() }

// Is says whether a server named in a journaled state (by Name, or by URL
// in states written before) is this one. States never hold the URL as
// given: it may be a secret, and a state holding a secret is sealed.
func (c *Client) Is(name string) bool { return name == c.Name() || name == c.URL() }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Redact hides the whole userinfo of a URL string (user:pass@ or a token
// given as user@), parseable or not: "http://***@host:5984/db". The
// authority ends at the last "@" before any "?" or "#", so a password
// holding "/" or "@" is hidden too.
func Redact(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	rest := raw[start:]
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return raw
	}
	return raw[:start] + "***@" + rest[at+1:]
}

// dbPath escapes a database name for a URL path ("a/b" → "a%2Fb").
func dbPath(db string) string { return "/" + url.PathEscape(db) }

// docPath escapes a document id, keeping the "_design/" and "_local/"
// prefixes readable as CouchDB expects.
func docPath(db, id string) string {
	for _, p := range []string{"_design/", "_local/"} {
		if strings.HasPrefix(id, p) {
			return dbPath(db) + "/" + p + url.PathEscape(strings.TrimPrefix(id, p))
		}
	}
	return dbPath(db) + "/" + url.PathEscape(id)
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Method, Path string
	Status       int
	Code, Reason string // CouchDB's "error" and "reason"
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
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

// classify turns a transport or HTTP error into a classified sdk error with a
// hint for the operator.
func (c *Client) classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	host := c.base.Host
	var he *HTTPError
	if errors.As(err, &he) {
		switch {
		case he.Status == 401 || he.Status == 403:
			return &sdk.Error{Kind: sdk.KindAuth, Hint: fmt.Sprintf("check the username and password for %s and that this user is a server admin or a member of the database", host),
				Err: fmt.Errorf("credentials rejected by %s: %w", host, err)}
		case he.Status == 404:
			return &sdk.Error{Kind: sdk.KindNotFound, Hint: "check the database or document name", Err: err}
		case he.Status == 409 || he.Status == 412:
			return &sdk.Error{Kind: sdk.KindConflict, Hint: "the document or database changed or already exists; inspect it, then run again", Err: err}
		case he.Status == 413 || he.Status == 507:
			return &sdk.Error{Kind: sdk.KindQuota, Hint: fmt.Sprintf("%s refused the size: free disk space or raise max_document_size / max_http_request_size, then resume", host), Err: err}
		case he.Status == 429:
			return &sdk.Error{Kind: sdk.KindQuota, Retryable: true, Hint: "the server is rate-limiting; retry later", Err: err}
		case he.Status == 400:
			return &sdk.Error{Kind: sdk.KindInvalid, Hint: "the server rejected the request; check the inputs", Err: err}
		case he.Status >= 500:
			return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true, Hint: fmt.Sprintf("%s answered with a server error; check its logs and resume", host), Err: err}
		}
		return &sdk.Error{Kind: sdk.KindInternal, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &sdk.Error{Kind: sdk.KindCancelled, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true, Hint: fmt.Sprintf("%s did not answer in time; check the server and resume", host), Err: err}
	}
	return &sdk.Error{Kind: sdk.KindUnreachable, Retryable: true,
		Hint: fmt.Sprintf("check that %s is up and reachable from here (firewall, DNS, port), then resume", host),
		Err:  fmt.Errorf("%s unreachable: %w", host, err)}
}

// scrub hides the password in an error message, whatever produced it.
type scrubbed struct {
	err    error
	secret string
}

func (s *scrubbed) Error() string {
	msg := s.err.Error()
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "***")
	}
	return msg
}
func (s *scrubbed) Unwrap() error { return s.err }

func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		if c.password != "" {
			se.Err = &scrubbed{err: se.Err, secret: c.password}
		}
		return err
	}
	if c.password == "" {
		return err
	}
	return &scrubbed{err: err, secret: c.password}
}

// Request is one HTTP call.
type Request struct {
	Method string
	Path   string // escaped path below the base URL, e.g. "/db/_changes"
	Query  url.Values
	Body   any // JSON-encoded unless it is []byte, Parts or io.Reader
	Header http.Header
	// NoRetry disables the transparent retries (non-idempotent requests).
	NoRetry bool
}

// Parts is a request body sent as the concatenation of its slices,
// without copying them into one buffer (replicated documents can weigh
// megabytes each).
type Parts [][]byte

// Do runs r and returns the open response (2xx only); the caller closes its
// body. Errors are classified and free of credentials.
func (c *Client) Do(ctx context.Context, r Request) (*http.Response, error) {
	var payload Parts
	var stream io.Reader
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		payload = Parts{b}
	case Parts:
		payload = b
	case io.Reader:
		stream = b
	default:
		js, err := json.Marshal(b)
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInternal, false, "", "encode request body: %v", err)
		}
		payload = Parts{js}
	}
	retries := c.retries
	if r.NoRetry || stream != nil {
		retries = 0
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, r, payload, stream)
		if err == nil {
			return resp, nil
		}
		cerr := c.classify(err)
		lastErr = c.scrub(cerr)
		se := sdk.Classify(cerr)
		if !se.Retryable || attempt >= retries || ctx.Err() != nil {
			return nil, lastErr
		}
		if err := c.backoff.Wait(ctx, attempt+1); err != nil {
			return nil, c.scrub(c.classify(err))
		}
	}
}

func (c *Client) once(ctx context.Context, r Request, payload Parts, stream io.Reader) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + mustUnescape(r.Path)
	u.RawPath = c.base.EscapedPath() + r.Path
	if r.Query != nil {
		u.RawQuery = r.Query.Encode()
	}
	var body io.Reader
	var size int64
	if payload != nil {
		body = payload.reader()
		for _, p := range payload {
			size += int64(len(p))
		}
	} else if stream != nil {
		body = stream
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.ContentLength = size
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(payload.reader()), nil }
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if req.Header.Get("Accept-Encoding") == "" && !c.gzip {
		// Uncompressed answers: most bytes replicated are attachments,
		// which compress poorly, and gzip costs the server more CPU than
		// it saves on a fast link (pouchdb-server compresses every JSON
		// answer it is allowed to, halving its replication throughput).
		req.Header.Set("Accept-Encoding", "identity")
	}
	if c.username != "" || c.password != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	he := &HTTPError{Method: r.Method, Path: r.Path, Status: resp.StatusCode}
	var e struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil {
		he.Code, he.Reason = e.Error, e.Reason
	}
	return nil, he
}

func (p Parts) reader() io.Reader {
	rs := make([]io.Reader, len(p))
	for i, b := range p {
		rs[i] = bytes.NewReader(b)
	}
	return io.MultiReader(rs...)
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p
	}
	return s
}

// JSON runs r and decodes a JSON answer into out (nil = discard).
func (c *Client) JSON(ctx context.Context, r Request, out any) error {
	resp, err := c.Do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return c.scrub(c.classify(fmt.Errorf("%s %s: read answer: %w", r.Method, r.Path, err)))
	}
	return nil
}

// Bytes runs r and returns the whole answer.
func (c *Client) Bytes(ctx context.Context, r Request) ([]byte, error) {
	resp, err := c.Do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n < 1<<30 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, c.scrub(c.classify(fmt.Errorf("%s %s: read answer: %w", r.Method, r.Path, err)))
	}
	return buf.Bytes(), nil
}

// ServerInfo is GET /.
type ServerInfo struct {
	CouchDB string          `json:"couchdb"`
	Express string          `json:"express-pouchdb"`
	Version string          `json:"version"`
	UUID    string          `json:"uuid"`
	Vendor  json.RawMessage `json:"vendor"`
}

// VendorName returns the vendor's name, "CouchDB" if not given.
func (s ServerInfo) VendorName() string {
	var v struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(s.Vendor, &v) == nil && v.Name != "" {
		return v.Name
	}
	return "CouchDB"
}

// IsPouchDB tells whether the server is pouchdb-server (express-pouchdb).
func (s ServerInfo) IsPouchDB() bool { return s.Express != "" }

// Info returns GET /.
func (c *Client) Info(ctx context.Context) (ServerInfo, error) {
	var s ServerInfo
	err := c.JSON(ctx, Request{Method: "GET", Path: "/"}, &s)
	return s, err
}

// DBInfo is GET /db.
type DBInfo struct {
	DBName       string          `json:"db_name"`
	DocCount     int64           `json:"doc_count"`
	DocDelCount  int64           `json:"doc_del_count"`
	UpdateSeq    json.RawMessage `json:"update_seq"`
	DiskSize     int64           `json:"disk_size"`
	DataSize     int64           `json:"data_size"`
	InstanceTime string          `json:"instance_start_time"`
	Sizes        struct {
		File     int64 `json:"file"`
		Active   int64 `json:"active"`
		External int64 `json:"external"`
	} `json:"sizes"`
}

// FileSize is the size on disk, whichever field the server fills.
func (d DBInfo) FileSize() int64 {
	if d.Sizes.File > 0 {
		return d.Sizes.File
	}
	return d.DiskSize
}

// DBInfo returns GET /db; a missing database is KindNotFound.
func (c *Client) DBInfo(ctx context.Context, db string) (DBInfo, error) {
	var d DBInfo
	err := c.JSON(ctx, Request{Method: "GET", Path: dbPath(db)}, &d)
	return d, err
}

// Exists tells whether db exists.
func (c *Client) Exists(ctx context.Context, db string) (bool, error) {
	_, err := c.DBInfo(ctx, db)
	if err == nil {
		return true, nil
	}
	if kindOf(err) == sdk.KindNotFound {
		return false, nil
	}
	return false, err
}

// CreateDB creates db; it reports false when it already existed.
func (c *Client) CreateDB(ctx context.Context, db string) (bool, error) {
	err := c.JSON(ctx, Request{Method: "PUT", Path: dbPath(db), NoRetry: true}, nil)
	if err == nil {
		return true, nil
	}
	if statusOf(err) == 412 {
		return false, nil
	}
	return false, err
}

// DeleteDB deletes db (a missing one is not an error).
func (c *Client) DeleteDB(ctx context.Context, db string) error {
	err := c.JSON(ctx, Request{Method: "DELETE", Path: dbPath(db)}, nil)
	if statusOf(err) == 404 {
		return nil
	}
	return err
}

// AllDBs lists the databases.
func (c *Client) AllDBs(ctx context.Context) ([]string, error) {
	var out []string
	err := c.JSON(ctx, Request{Method: "GET", Path: "/_all_dbs"}, &out)
	return out, err
}

// GetDoc reads a document; query may ask for attachments or revisions.
func (c *Client) GetDoc(ctx context.Context, db, id string, query url.Values) (map[string]any, error) {
	var doc map[string]any
	err := c.JSON(ctx, Request{Method: "GET", Path: docPath(db, id), Query: query}, &doc)
	return doc, err
}

// PutDoc writes a document and returns its new revision.
func (c *Client) PutDoc(ctx context.Context, db, id string, doc any) (string, error) {
	var out struct {
		Rev string `json:"rev"`
	}
	err := c.JSON(ctx, Request{Method: "PUT", Path: docPath(db, id), Body: doc, NoRetry: true}, &out)
	return out.Rev, err
}

// kindOf returns the classification of err ("" when err is nil).
func kindOf(err error) sdk.Kind {
	if err == nil {
		return sdk.KindUnknown
	}
	return sdk.Classify(err).Kind
}

package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// httpAction sends a request and checks the answer, retrying until a
// deadline. It is meant for checks (health, version, readiness).
type httpAction struct{}

// maxBody caps how much of a response body is kept.
const maxBody = 1 << 20

func (*httpAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "http",
		Description: "Sends an HTTP request and checks the status (and optionally JSON fields) of the answer, " +
			"retrying until `retry_for` has passed. Meant for checks: the engine never undoes it.",
		Inputs: []sdk.Attribute{
			{Name: "url", Type: cty.String, Required: true, Description: "URL to request."},
			{Name: "method", Type: cty.String, Description: "HTTP method (default GET)."},
			{Name: "headers", Type: cty.Map(cty.String), Description: "Request headers."},
			{Name: "body", Type: cty.String, Description: "Request body."},
			{Name: "expect_status", Type: cty.List(cty.Number), Description: "Accepted status codes (default: any 2xx)."},
			{Name: "json", Type: cty.Map(cty.String), Description: "JSON checks: dotted path in the response body (e.g. \"status\" or \"items.0.name\") to expected value."},
			{Name: "timeout", Type: cty.String, Description: "Timeout of one request (default 10s)."},
			{Name: "retry_for", Type: cty.String, Description: "Keep retrying failed checks for this long (default: no retry)."},
			{Name: "retry_interval", Type: cty.String, Description: "Delay between attempts (default 2s)."},
		},
		Outputs: []sdk.Attribute{
			{Name: "status", Type: cty.Number, Description: "Status code."},
			{Name: "headers", Type: cty.Map(cty.String), Description: "Response headers (multiple values joined with \", \")."},
			{Name: "body", Type: cty.String, Description: "Response body (first MiB)."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

type httpInputs struct {
	URL           string            `cty:"url"`
	Method        string            `cty:"method"`
	Headers       map[string]string `cty:"headers"`
	Body          string            `cty:"body"`
	ExpectStatus  []int             `cty:"expect_status"`
	JSON          map[string]string `cty:"json"`
	Timeout       string            `cty:"timeout"`
	RetryFor      string            `cty:"retry_for"`
	RetryInterval string            `cty:"retry_interval"`
}

func (a *httpAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in httpInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if in.Method == "" {
		in.Method = http.MethodGet
	}
	timeout, err := parseDuration("timeout", in.Timeout, 10*time.Second)
	if err != nil {
		return nil, err
	}
	retryFor, err := parseDuration("retry_for", in.RetryFor, 0)
	if err != nil {
		return nil, err
	}
	interval, err := parseDuration("retry_interval", in.RetryInterval, 2*time.Second)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(retryFor)
	client := &http.Client{Timeout: timeout}
	wait := backoff.Policy{Base: interval, Fixed: true}
	for attempt := 1; ; attempt++ {
		res, err := a.once(ctx, client, &in)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
		}
		if time.Now().Add(interval).After(deadline) {
			if attempt > 1 {
				return res, fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return res, err
		}
		ev.Log(sdk.LevelInfo, fmt.Sprintf("attempt %d: %v; retrying in %s", attempt, err, interval))
		if err := wait.Wait(ctx, attempt); err != nil {
			return nil, &sdk.Error{Kind: sdk.KindCancelled, Err: err}
		}
	}
}

// once sends one request and checks it.
func (a *httpAction) once(ctx context.Context, client *http.Client, in *httpInputs) (*sdk.Result, error) {
	r, err := http.NewRequestWithContext(ctx, in.Method, in.URL, strings.NewReader(in.Body))
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "", "build request: %v", err)
	}
	for k, v := range in.Headers {
		r.Header.Set(k, v)
	}
	resp, err := client.Do(r)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindUnreachable, true, "", "%s %s: %v", in.Method, redactURL(in.URL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, sdk.Errorf(sdk.KindUnreachable, true, "", "read body: %v", err)
	}
	hdr := map[string]cty.Value{}
	for k, v := range resp.Header {
		hdr[k] = cty.StringVal(strings.Join(v, ", "))
	}
	hv := cty.MapValEmpty(cty.String)
	if len(hdr) > 0 {
		hv = cty.MapVal(hdr)
	}
	res := &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"status":  cty.NumberIntVal(int64(resp.StatusCode)),
		"headers": hv,
		"body":    cty.StringVal(string(body)),
	})}
	if !statusOK(resp.StatusCode, in.ExpectStatus) {
		kind, retry := sdk.KindConflict, true
		switch {
		case resp.StatusCode >= 500:
			kind = sdk.KindUnreachable
		case resp.StatusCode == http.StatusNotFound:
			kind = sdk.KindNotFound
		case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
			kind = sdk.KindAuth
		}
		return res, sdk.Errorf(kind, retry, "", "%s %s: status %d, want %s", in.Method, redactURL(in.URL), resp.StatusCode, wantStatus(in.ExpectStatus))
	}
	if len(in.JSON) > 0 {
		if err := checkJSON(body, in.JSON); err != nil {
			return res, err
		}
	}
	return res, nil
}

func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 300
	}
	for _, w := range want {
		if w == code {
			return true
		}
	}
	return false
}

func wantStatus(want []int) string {
	if len(want) == 0 {
		return "2xx"
	}
	s := make([]string, len(want))
	for i, w := range want {
		s[i] = strconv.Itoa(w)
	}
	return strings.Join(s, " or ")
}

// checkJSON checks dotted paths in a JSON document against expected values
// (compared as strings; objects and arrays as compact JSON).
func checkJSON(body []byte, checks map[string]string) error {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return sdk.Errorf(sdk.KindConflict, true, "", "response is not JSON: %v", err)
	}
	paths := make([]string, 0, len(checks))
	for p := range checks {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		got, ok := jsonPath(doc, p)
		if !ok {
			return sdk.Errorf(sdk.KindConflict, true, "", "json %s: missing", p)
		}
		if got != checks[p] {
			return sdk.Errorf(sdk.KindConflict, true, "", "json %s: got %q, want %q", p, got, checks[p])
		}
	}
	return nil
}

func jsonPath(doc any, path string) (string, bool) {
	cur := doc
	if path != "" && path != "." {
		for _, part := range strings.Split(path, ".") {
			switch c := cur.(type) {
			case map[string]any:
				v, ok := c[part]
				if !ok {
					return "", false
				}
				cur = v
			case []any:
				i, err := strconv.Atoi(part)
				if err != nil || i < 0 || i >= len(c) {
					return "", false
				}
				cur = c[i]
			default:
				return "", false
			}
		}
	}
	switch c := cur.(type) {
	case string:
		return c, true
	case nil:
		return "null", true
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(c), true
	}
	b, _ := json.Marshal(cur)
	return string(b), true
}

// redactURL drops user info from a URL for messages.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.IndexByte(rest, '@'); at >= 0 && at < strings.IndexAny(rest+"/", "/") {
			return u[:i+3] + "REDACTED@" + rest[at+1:]
		}
	}
	return u
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

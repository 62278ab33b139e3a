package viewer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/approval"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/viewer"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// selfExe is a runbook binary built for the tests: builtin plugins are
// that binary started again in plugin mode.
var selfExe string

func TestMain(m *testing.M) { os.Exit(testenv.RunMainWithRunbook(m, &selfExe)) }

// canary is a secret planted in every run the tests start.
const canary = "CANARY-s3cr3t-9d1f27"

const liveRunbook = `
runbook "live" { lock = "live-key" }
variable "secret" {
  type      = string
  sensitive = true
}
step "core.noop" "first" {
  with = { values = { token = var.secret, plain = "visible" } }
}
step "core.sleep" "wait" {
  with       = { duration = "1s" }
  depends_on = [step.first]
}
step "core.approve" "gate" {
  with       = { prompt = "go?" }
  depends_on = [step.wait]
}
step "core.noop" "after" {
  with       = { values = "done" }
  depends_on = [step.gate]
}
`

// env is a state directory, a viewer over it and a way to start runs.
type env struct {
	t        *testing.T
	dir      string
	stateDir string
	srv      *httptest.Server
	v        *viewer.Server
	events   *viewer.EventLog
}

func newEnv(t *testing.T, auth viewer.AuthConfig) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, stateDir: filepath.Join(dir, ".runbook")}
	e.events = &viewer.EventLog{}
	t.Cleanup(e.events.Close)
	rs, err := session.New(session.Options{StateDir: e.stateDir, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if auth.Listen == "" {
		auth.Listen = "127.0.0.1:0"
	}
	if auth.LocalUser == "" {
		auth.LocalUser = "tester"
	}
	a, err := viewer.NewAuth(auth)
	if err != nil {
		t.Fatal(err)
	}
	e.v, err = viewer.New(viewer.Options{Runs: rs, Store: journal.NewLocal(e.stateDir), StateDir: e.stateDir, Auth: a,
		Approve: func(runID, step, by string, ok bool) error { return approval.Write(e.stateDir, runID, step, by, ok) },
		Logf:    t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.v)
	t.Cleanup(func() { e.v.Close(); e.srv.Close() })
	return e
}

// start applies src in the background with the builtin plugins; wait
// returns its outcome.
func (e *env) start(ctx context.Context, src string, args ...string) (wait func() *session.Outcome) {
	e.t.Helper()
	path := filepath.Join(e.dir, "main.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
	s, err := session.New(session.Options{StateDir: e.stateDir, Sink: e.events, Builtins: builtin.All(),
		Getenv: func(k string) string {
			if k == "RUNBOOK_SELF_EXE" {
				return selfExe
			}
			return ""
		}})
	if err != nil {
		e.t.Fatal(err)
	}
	rb, err := s.Open(lang.VarSources{Args: args}, path)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan *session.Outcome, 1)
	go func() {
		defer s.Close()
		defer rb.Close()
		out, err := rb.Apply(ctx, nil)
		if err != nil {
			e.t.Errorf("apply: %v", err)
		}
		done <- out
	}()
	return func() *session.Outcome { return <-done }
}

// get fetches path, failing the test unless the status is code.
func (e *env) get(c *http.Client, path string, code int) string {
	e.t.Helper()
	if c == nil {
		c = e.srv.Client()
	}
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		e.t.Fatalf("GET %s: status %d, want %d: %s", path, resp.StatusCode, code, b)
	}
	return string(b)
}

// waitRun waits for the first run to show up in the API.
func (e *env) waitRun() string {
	e.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var l struct{ Runs []viewer.RunSummary }
		if json.Unmarshal([]byte(e.get(nil, "/api/runs", 200)), &l) == nil && len(l.Runs) > 0 {
			return l.Runs[0].ID
		}
	}
	e.t.Fatal("no run showed up")
	return ""
}

// sse is an event-stream client collecting what it receives.
type sse struct {
	mu   sync.Mutex
	raw  strings.Builder
	evs  chan [2]string // event, data
	body io.Closer
}

func openSSE(t *testing.T, c *http.Client, url string) *sse {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("event stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sse{evs: make(chan [2]string, 1024), body: resp.Body}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			s.mu.Unlock()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				select {
				case s.evs <- [2]string{ev, strings.TrimPrefix(line, "data: ")}:
				default:
				}
			}
		}
		close(s.evs)
	}()
	return s
}

func (s *sse) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// waitFor reads events until match returns true.
func (s *sse) waitFor(t *testing.T, what string, d time.Duration, match func(ev, data string) bool) {
	t.Helper()
	timer := time.After(d)
	for {
		select {
		case e, ok := <-s.evs:
			if !ok {
				t.Fatalf("event stream ended waiting for %s", what)
			}
			if match(e[0], e[1]) {
				return
			}
		case <-timer:
			t.Fatalf("no %s within %s; stream so far:\n%s", what, d, s.text())
		}
	}
}

func stepEvent(addr string, ok func(viewer.StepView) bool) func(ev, data string) bool {
	return func(ev, data string) bool {
		var sv viewer.StepView
		return ev == "step" && json.Unmarshal([]byte(data), &sv) == nil && sv.Address == addr && ok(sv)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// TestLiveRunApprovedFromThePage starts a run whose core.approve step
// waits; the event stream shows it live, an approval without the form
// token or from another origin is refused, the page's form approves it as
// the local user, and no page, API answer or event carries the secret.
func TestLiveRunApprovedFromThePage(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wait := e.start(ctx, liveRunbook, "secret="+canary)
	id := e.waitRun()
	var seen strings.Builder // everything the viewer served
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	stream := openSSE(t, e.srv.Client(), e.srv.URL+"/api/runs/"+id+"/events")
	stream.waitFor(t, "gate waiting for approval", 30*time.Second, stepEvent("gate", func(sv viewer.StepView) bool { return sv.Approvable }))

	page := e.get(browser, "/runs/"+id, 200)
	seen.WriteString(page)
	for _, want := range []string{"core.approve", `data-step="gate"`, "live-key", "(sensitive)", "visible"} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no form token on the run page")
	}
	post := func(form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest("POST", e.srv.URL+"/runs/"+id+"/approve", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(url.Values{"step": {"gate"}, "decision": {"approve"}}, e.srv.URL); r.StatusCode != http.StatusForbidden {
		t.Errorf("approval without form token: status %d, want 403", r.StatusCode)
	}
	if r := post(url.Values{"step": {"gate"}, "decision": {"approve"}, "csrf": {m[1]}}, "http://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("approval from another origin: status %d, want 403", r.StatusCode)
	}
	if r := post(url.Values{"step": {"first"}, "decision": {"approve"}, "csrf": {m[1]}}, e.srv.URL); r.StatusCode != http.StatusConflict {
		t.Errorf("approval of a step that does not wait: status %d, want 409", r.StatusCode)
	}
	if r := post(url.Values{"step": {"gate"}, "decision": {"approve"}, "csrf": {m[1]}}, e.srv.URL); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("approval: status %d, want 303", r.StatusCode)
	}
	stream.waitFor(t, "the run to succeed", 30*time.Second, func(ev, data string) bool {
		return ev == "run" && strings.Contains(data, `"state":"succeeded"`)
	})
	if out := wait(); out == nil || out.Result.State != journal.RunSucceeded {
		t.Fatalf("run outcome: %+v", out)
	}
	var d viewer.RunDetail
	body := e.get(nil, "/api/runs/"+id, 200)
	seen.WriteString(body)
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	for _, s := range d.Steps {
		if s.Address == "gate" && s.Outputs["approved_by"] != "tester" {
			t.Errorf("gate outputs %v: want approved_by tester", s.Outputs)
		}
		if s.Address == "first" && fmt.Sprint(s.Inputs) != "map[fail:<nil> values:map[plain:visible token:(sensitive)]]" {
			t.Errorf("first inputs %v: want the token (sensitive)", s.Inputs)
		}
	}
	for _, p := range []string{"/", "/api/runs", "/runs/" + id, "/api/runs/" + id + "/graph", "/api/runs/" + id + "/logs",
		"/runs/" + id + "?timeline=all", "/api/runs/" + id + "/timeline?all=1", "/api/campaigns", "/runs/" + id + "?state=succeeded"} {
		seen.WriteString(e.get(nil, p, 200))
	}
	// What the viewer keeps beside the journal (the event log) too.
	files, _ := filepath.Glob(filepath.Join(e.stateDir, "runs", id, "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), canary) {
			t.Errorf("the secret is in %s", f)
		}
	}
	seen.WriteString(stream.text())
	if !strings.Contains(stream.text(), "event: step") {
		t.Error("the stream sent no step event")
	}
	if strings.Contains(seen.String(), canary) {
		t.Fatal("the secret reached a page, an API answer or the event stream")
	}
	if !strings.Contains(seen.String(), "waiting for approval") {
		t.Error("the step's log lines are not shown")
	}
	if logs := e.get(nil, "/api/runs/"+id+"/logs", 200); !strings.Contains(logs, "approved by tester") || !strings.Contains(logs, `"step":"wait"`) {
		t.Errorf("logs and progress: %s", logs)
	}
}

package viewer_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/approval"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/viewer"
)

// synth journals a run of the runbook src without running it: every step
// in done succeeded, every step in running is in flight. With live, the
// test holds the run's lock as a live process does (else the run is
// interrupted). The returned journal appends more records.
func (e *env) synth(src string, done, running []string, live bool) (string, journal.Journal) {
	e.t.Helper()
	path := filepath.Join(e.dir, "synth.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(src))
	store := &journal.LocalStore{Dir: e.stateDir, NoSync: true}
	h := session.Holder()
	m := &journal.Meta{Runbook: "synth", User: h.User, Host: h.Host, PID: h.PID, Started: time.Now().UTC(), Lock: "synth-key",
		Files: []journal.FileHash{{Path: path, SHA256: hex.EncodeToString(sum[:])}}}
	j, err := store.Create(m)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { j.Close() })
	if live {
		l, err := store.Lock("run:"+m.ID, m.ID, h)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { l.Release(true) })
	}
	for _, s := range done {
		must(e.t, j.AppendNoWait(&journal.Record{Type: journal.RecAttemptStarted, Step: s, Attempt: 1}))
		must(e.t, j.AppendNoWait(&journal.Record{Type: journal.RecStepSucceeded, Step: s, Attempt: 1}))
	}
	for _, s := range running {
		must(e.t, j.AppendNoWait(&journal.Record{Type: journal.RecAttemptStarted, Step: s, Attempt: 1}))
	}
	must(e.t, j.Append(&journal.Record{Type: journal.RecRunState, State: journal.RunRunning}))
	return m.ID, j
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

const gateRunbook = `
runbook "synth" {}
step "core.noop" "a" { with = {} }
step "core.approve" "gate" {
  with       = { prompt = "go?" }
  depends_on = [step.a]
}
`

func TestUnknownRunIsNotFound(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	if b := e.get(nil, "/runs/01NOSUCHRUN", 404); !strings.Contains(b, "Not found") || !strings.Contains(b, "01NOSUCHRUN") {
		t.Errorf("404 page: %s", b)
	}
	for _, p := range []string{"/api/runs/01NOSUCHRUN", "/api/runs/01NOSUCHRUN/events", "/api/runs/01NOSUCHRUN/graph", "/nosuch", "/runs/..%2f..%2fetc"} {
		b := e.get(nil, p, 404)
		if strings.HasPrefix(p, "/api/") && !strings.Contains(b, `"error"`) {
			t.Errorf("%s: want a JSON error, got %s", p, b)
		}
	}
}

// TestCorruptJournal: a run whose journal is damaged mid-file is listed
// as corrupt, its page says so, and the server goes on serving.
func TestCorruptJournal(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	id, j := e.synth(gateRunbook, []string{"a"}, nil, false)
	j.Close()
	path := filepath.Join(e.stateDir, "runs", id, "journal.ndjson")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = "0badf00d {not json\n"
	must(t, os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600))
	if l := e.get(nil, "/", 200); !strings.Contains(l, "st-corrupt") {
		t.Errorf("list does not show the run corrupt:\n%s", l)
	}
	page := e.get(nil, "/runs/"+id, 200)
	if !strings.Contains(page, `id="corrupt"`) || !strings.Contains(page, "journal corrupt at byte") {
		t.Errorf("run page does not say the journal is corrupt:\n%s", page)
	}
	var d viewer.RunDetail
	must(t, json.Unmarshal([]byte(e.get(nil, "/api/runs/"+id, 200)), &d))
	if d.Run.State != journal.RunCorrupt || d.Corrupt == "" {
		t.Errorf("API: state %q corrupt %q", d.Run.State, d.Corrupt)
	}
	stream := openSSE(t, e.srv.Client(), e.srv.URL+"/api/runs/"+id+"/events")
	stream.waitFor(t, "the run's state", 5*time.Second, func(ev, data string) bool {
		return ev == "run" && strings.Contains(data, `"state":"corrupt"`)
	})
	e.get(nil, "/", 200)
}

func TestAuth(t *testing.T) {
	if _, err := viewer.NewAuth(viewer.AuthConfig{Listen: "0.0.0.0:8080", LocalUser: "me"}); err == nil || !strings.Contains(err.Error(), "refusing to serve on 0.0.0.0:8080") {
		t.Errorf("non-loopback without authentication: err = %v", err)
	}
	if _, err := viewer.NewAuth(viewer.AuthConfig{Listen: "[::1]:8080", LocalUser: "me"}); err != nil {
		t.Errorf("loopback: %v", err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	must(t, os.WriteFile(tokens, []byte("# users\nalice:alice-token-0123456789\nbob:bob-token-0123456789abc\n"), 0o600))
	e := newEnv(t, viewer.AuthConfig{Listen: "0.0.0.0:0", TokenFile: tokens})
	id, _ := e.synth(gateRunbook, []string{"a"}, []string{"gate"}, true)
	e.get(nil, "/", http.StatusUnauthorized)
	e.get(nil, "/api/runs", http.StatusUnauthorized)
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/runs", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-0123456789")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %v %v", resp.StatusCode, err)
	}
	// A browser: ?token= once, then its cookie.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if p := e.get(c, "/?token=bob-token-0123456789abc", 200); !strings.Contains(p, "signed in as bob") {
		t.Errorf("page does not name bob:\n%s", p)
	}
	e.get(c, "/runs/"+id, 200)
	// An API client: the bearer token, no form token needed.
	req, _ = http.NewRequest("POST", e.srv.URL+"/api/runs/"+id+"/approve", strings.NewReader(`{"step":"gate","decision":"reject"}`))
	req.Header.Set("Authorization", "Bearer alice-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("API approval: %v %v", resp.StatusCode, err)
	}
	b, err := os.ReadFile(approval.Path(e.stateDir, id, "gate"))
	if err != nil || !strings.Contains(string(b), `"approved_by":"alice"`) || !strings.Contains(string(b), `"approved":false`) {
		t.Errorf("approval file %s (%v): want rejected by alice", b, err)
	}
	// The cookie alone (a browser) needs the form token.
	req, _ = http.NewRequest("POST", e.srv.URL+"/api/runs/"+id+"/approve", strings.NewReader(`{"step":"gate","decision":"approve"}`))
	req.Header.Set("Origin", e.srv.URL)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cookie approval without form token: %v %v", resp.StatusCode, err)
	}
}

// TestBigRunPage measures the list and the page of a 10,000-step run,
// cold and warm: steps are paged, the graph is drawn on request.
func TestBigRunPage(t *testing.T) {
	const n = 10000
	var src strings.Builder
	src.WriteString("runbook \"big\" {}\n")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("s%05d", i)
		dep := ""
		if i >= 100 {
			dep = fmt.Sprintf("\n  depends_on = [step.s%05d]", i-100)
		}
		fmt.Fprintf(&src, "step \"core.noop\" %q {\n  with = {}%s\n}\n", names[i], dep)
	}
	e := newEnv(t, viewer.AuthConfig{})
	id, _ := e.synth(src.String(), names[:n-10], names[n-10:], true)
	for round := range 2 { // the second is warm (the runbook is parsed once)
		for _, p := range []string{"/", "/runs/" + id} {
			start := time.Now()
			body := e.get(nil, p, 200)
			d := time.Since(start)
			t.Logf("round %d: GET %s: %v, %d KB", round, p, d, len(body)>>10)
			// The first visit parses the 10,000-step runbook and journal
			// (about 1 s of CPU: only logged, the machine's load decides);
			// the next ones are served from the cache.
			if round == 1 && d > 2*time.Second && !raceEnabled {
				t.Errorf("GET %s took %v", p, d)
			}
			if p != "/" && !strings.Contains(body, "drawn only when you ask") {
				t.Errorf("a 10,000-step graph is drawn at once")
			}
		}
	}
}

// TestInterruptedRunAndFilters: a run the journal says is running while
// no process holds it is listed interrupted with the command that resumes
// it; the list filters by state, runbook and lock key.
func TestInterruptedRunAndFilters(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	dead, _ := e.synth(gateRunbook, []string{"a"}, []string{"gate"}, false)
	live, _ := e.synth(gateRunbook, []string{"a"}, nil, true)
	list := func(q string) map[string]viewer.RunSummary {
		var l struct{ Runs []viewer.RunSummary }
		must(t, json.Unmarshal([]byte(e.get(nil, "/api/runs"+q, 200)), &l))
		out := map[string]viewer.RunSummary{}
		for _, r := range l.Runs {
			out[r.ID] = r
		}
		return out
	}
	all := list("")
	if r := all[dead]; r.State != journal.RunInterrupted || !strings.Contains(r.Resume, "resume") || !strings.Contains(r.Resume, dead) {
		t.Errorf("dead run: %+v", r)
	}
	if r := all[live]; r.State != journal.RunRunning {
		t.Errorf("live run: %+v", r)
	}
	if l := list("?state=interrupted"); len(l) != 1 || l[dead].ID == "" {
		t.Errorf("state filter: %v", l)
	}
	if l := list("?runbook=nosuch"); len(l) != 0 {
		t.Errorf("runbook filter: %v", l)
	}
	if l := list("?lock=synth&runbook=synth"); len(l) != 2 {
		t.Errorf("lock filter: %v", l)
	}
	if p := e.get(nil, "/runs/"+dead, 200); !strings.Contains(p, "st-interrupted") || !strings.Contains(p, "runbook resume") {
		t.Errorf("run page of the interrupted run lacks its state or resume command")
	}
}

// TestMermaidIsEmbedded: the graph library is served from the binary,
// compressed for browsers, with its licence beside it.
func TestMermaidIsEmbedded(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	req, _ := http.NewRequest("GET", e.srv.URL+"/third_party/mermaid/mermaid.min.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.ContentLength > 1<<20 {
		t.Errorf("mermaid: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.ContentLength)
	}
	if js := e.get(nil, "/third_party/mermaid/mermaid.min.js", 200); len(js) < 1<<20 {
		t.Errorf("mermaid is %d bytes", len(js))
	}
	if l := e.get(nil, "/third_party/mermaid/LICENSE", 200); !strings.Contains(l, "MIT License") {
		t.Errorf("licence: %.80s", l)
	}
}

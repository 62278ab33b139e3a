// Package viewer is the web UI of `runbook serve`: the runs of a state
// store, each run's graph coloured by step state and updated live
// (server-sent events from the journal), its timeline, values (sensitive
// ones shown as "(sensitive)"), logs and progress, and the approval of
// waiting core.approve steps. It reads runs through the session layer and
// journal.Store; it never prints (errors go to Options.Logf).
package viewer

import (
	"bytes"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
)

//go:embed assets
var assets embed.FS

// Runs is how the viewer lists and reads runs: *session.Session, whose
// Runs and Run say a run whose process died is interrupted and give the
// commands that continue it.
type Runs interface {
	Runs() ([]*session.RunInfo, error)
	Run(id string) (*session.RunInfo, error)
}

// Campaigns lists campaigns with their targets counted by state (the CLI
// binds it to engine/campaign on a state database); a nil
// Options.Campaigns hides the section.
type Campaigns interface {
	Campaigns() ([]Campaign, error)
}

// Campaign is one campaign in the runs list.
type Campaign struct {
	Name   string         `json:"name"`
	Counts map[string]int `json:"counts"` // run state → runs
}

// Options configure a Server.
type Options struct {
	// Runs lists and reads runs (required).
	Runs Runs
	// Store is the state store the runs are journaled in, followed for live
	// updates (required).
	Store journal.Store
	// StateDir is the local state directory (approval files, event logs);
	// empty for a store without one (approvals are then refused).
	StateDir string
	// Approve answers a waiting core.approve step (approval.Write bound to
	// the state directory); nil refuses approvals.
	Approve func(runID, step, by string, approved bool) error
	// Graph writes the Mermaid graph of cfg (rollback: the undo order), as
	// `runbook graph -format mermaid` does; nil uses the plain graph.
	Graph func(cfg *lang.Config, rollback bool) (string, error)
	// Campaigns, when set, lists campaigns above the runs.
	Campaigns Campaigns
	// Auth identifies users (required; see NewAuth).
	Auth *Auth
	// Poll is how often a followed journal is checked (default 200 ms).
	Poll time.Duration
	// Logf receives server errors (nil: dropped).
	Logf func(format string, args ...any)
}

// Server serves the viewer. It is an http.Handler.
type Server struct {
	opts  Options
	mux   *http.ServeMux
	tmpl  *template.Template
	hub   *hub
	runMu sync.Mutex // Options.Runs (a session) is not safe for concurrent use; guards the caches below
	list  *cachedRuns
	runs  map[string]*cachedRun
	cache graphCache
}

// New returns the viewer's handler.
func New(opts Options) (*Server, error) {
	if opts.Runs == nil || opts.Store == nil || opts.Auth == nil {
		return nil, errors.New("viewer: Runs, Store and Auth are required")
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	t, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("viewer templates: %w", err)
	}
	s := &Server{opts: opts, tmpl: t, mux: http.NewServeMux()}
	s.hub = newHub(s)
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServer(http.FS(static))
	s.mux.Handle("GET /static/", cacheFor(files))
	s.mux.Handle("GET /third_party/", cacheFor(gzipped(static, files)))
	s.mux.HandleFunc("GET /{$}", s.page(s.listPage))
	s.mux.HandleFunc("GET /runs/{id}", s.page(s.runPage))
	s.mux.HandleFunc("POST /runs/{id}/approve", s.approveForm)
	s.mux.HandleFunc("GET /api/runs", s.api(s.apiRuns))
	s.mux.HandleFunc("GET /api/runs/{id}", s.api(s.apiRun))
	s.mux.HandleFunc("GET /api/runs/{id}/graph", s.api(s.apiGraph))
	s.mux.HandleFunc("GET /api/runs/{id}/logs", s.api(s.apiLogs))
	s.mux.HandleFunc("GET /api/runs/{id}/timeline", s.api(s.apiTimeline))
	s.mux.HandleFunc("GET /api/runs/{id}/events", s.events)
	s.mux.HandleFunc("POST /api/runs/{id}/approve", s.approveAPI)
	s.mux.HandleFunc("GET /api/campaigns", s.api(s.apiCampaigns))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.notFound(w, r, "no such page: "+r.URL.Path)
	})
	return s, nil
}

// Close stops following journals (open event streams end).
func (s *Server) Close() { s.hub.close() }

// ServeHTTP authenticates the request and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u, err := s.opts.Auth.identify(w, r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="runbook"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	s.mux.ServeHTTP(w, r.WithContext(withUser(r.Context(), u)))
}

// gzipped serves the files of fsys compressed to clients that accept it
// (Mermaid is 2.7 MB, 0.7 MB compressed), each compressed once.
func gzipped(fsys fs.FS, plain http.Handler) http.Handler {
	var mu sync.Mutex
	done := map[string][]byte{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") || !strings.HasSuffix(name, ".js") {
			plain.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		z, ok := done[name]
		if !ok {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				mu.Unlock()
				plain.ServeHTTP(w, r)
				return
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(b)
			_ = zw.Close()
			z = buf.Bytes()
			done[name] = z
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Vary", "Accept-Encoding")
		_, _ = w.Write(z)
	})
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// errNotFound is an unknown run.
var errNotFound = errors.New("not found")

// runInfo reads run id through Options.Runs. An unknown id (or one not
// a unique prefix) is errNotFound.
func (s *Server) runInfo(id string) (*session.RunInfo, error) {
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return nil, errNotFound
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	fp := s.fingerprint([]string{id})
	if c := s.runs[id]; c != nil && fp != "" && c.fp == fp && s.live(c.ri) {
		return c.ri, nil
	}
	ri, err := s.opts.Runs.Run(id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "no run ") || strings.Contains(err.Error(), "ambiguous") {
			return nil, fmt.Errorf("%w: %v", errNotFound, err)
		}
		return nil, err
	}
	if fp != "" && ri.State.Meta != nil && ri.State.Meta.ID == id {
		if s.runs == nil || len(s.runs) > 1000 {
			s.runs = map[string]*cachedRun{}
		}
		s.runs[id] = &cachedRun{ri: ri, fp: fp}
	}
	return ri, nil
}

func (s *Server) allRuns() ([]*session.RunInfo, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	var fp string
	if ids, err := s.opts.Store.List(); err == nil {
		fp = s.fingerprint(ids)
	}
	if c := s.list; c != nil && fp != "" && c.fp == fp && s.live(c.runs...) {
		return c.runs, nil
	}
	runs, err := s.opts.Runs.Runs()
	if err == nil && fp != "" {
		s.list = &cachedRuns{runs: runs, fp: fp}
	}
	return runs, err
}

// A run read before is read again only when its journal changed, or when
// the journal says it runs and no live process holds it any more: the
// session then says it is interrupted.
type cachedRun struct {
	ri *session.RunInfo
	fp string
}

type cachedRuns struct {
	runs []*session.RunInfo
	fp   string
}

// live reports whether each run the cached infos say is running (or
// rolling back) is still held by a live process.
func (s *Server) live(infos ...*session.RunInfo) bool {
	ls, ok := s.opts.Store.(*journal.LocalStore)
	if !ok {
		return false
	}
	for _, ri := range infos {
		st := ri.State
		if st.Meta == nil || (st.State != journal.RunRunning && st.State != journal.RunRollingBack) {
			continue
		}
		if l, err := ls.Status("run:" + st.Meta.ID); err != nil || !l.Active {
			return false
		}
	}
	return true
}

// fingerprint names the journals of runs ids as they are now (size and
// modification time of each file of a local store; "" for another store,
// whose runs are not cached).
func (s *Server) fingerprint(ids []string) string {
	ls, ok := s.opts.Store.(*journal.LocalStore)
	if !ok {
		return ""
	}
	var b strings.Builder
	for _, id := range ids {
		fi, err := os.Stat(filepath.Join(ls.Location(id), "journal.ndjson"))
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "%s %d %d\n", id, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

package viewer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
)

// stepsPerPage is how many step rows a run page shows at once; the rest
// are a click away (a 10,000-step run stays quick to load).
const stepsPerPage = 200

// autoGraphNodes is the largest graph drawn when the page loads; a larger
// one is drawn on request.
const autoGraphNodes = 300

var funcs = template.FuncMap{
	"ms": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).Round(time.Millisecond).String()
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"whenp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("15:04:05.000")
	},
	"json": func(v any) string {
		b, _ := json.MarshalIndent(v, "", "  ")
		return string(b)
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"pct":  func(f float64) template.CSS { return template.CSS(strconv.FormatFloat(f, 'f', 2, 64) + "%") },
	"dict": func(p any, s string) map[string]any { return map[string]any{"P": p, "S": s} },
	"ptr":  func(t time.Time) *time.Time { return &t },
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	},
	"states": func() []string {
		return []string{journal.StepPending, journal.StepRunning, journal.StepSucceeded, journal.StepFailed, journal.StepSkipped,
			journal.StepCancelled, journal.StepUndoing, journal.StepUndone, journal.StepUndoFailed, journal.StepUndoWaived}
	},
}

// page renders an HTML page; errors are shown as pages.
func (s *Server) page(h func(w http.ResponseWriter, r *http.Request) (string, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, data, err := h(w, r)
		if errors.Is(err, errNotFound) {
			s.notFound(w, r, err.Error())
			return
		}
		if err != nil {
			s.opts.Logf("%s: %v", r.URL.Path, err)
			s.render(w, http.StatusInternalServerError, "error.html", map[string]any{"Title": "Error", "Message": err.Error()})
			return
		}
		s.render(w, http.StatusOK, name, data)
	}
}

func (s *Server) render(w http.ResponseWriter, code int, name string, data any) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		s.opts.Logf("template %s: %v", name, err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": msg})
		return
	}
	s.render(w, http.StatusNotFound, "error.html", map[string]any{"Title": "Not found", "Message": msg})
}

// api serves JSON.
func (s *Server) api(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		switch {
		case errors.Is(err, errNotFound):
			s.notFound(w, r, err.Error())
		case err != nil:
			s.opts.Logf("%s: %v", r.URL.Path, err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, v)
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// runList is the runs list: every run, filtered.
type runList struct {
	Runs      []RunSummary `json:"runs"`
	Total     int          `json:"total"`
	Campaigns []Campaign   `json:"campaigns,omitempty"`
	// For the page: the filters and their choices.
	Runbook, State, Lock string   `json:"-"`
	Runbooks, States     []string `json:"-"`
}

func (s *Server) runList(r *http.Request) (*runList, error) {
	infos, err := s.allRuns()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	all := make([]RunSummary, 0, len(infos))
	for _, ri := range infos {
		all = append(all, summary(ri, now))
	}
	q := r.URL.Query()
	l := &runList{Runbook: q.Get("runbook"), State: q.Get("state"), Lock: q.Get("lock"), Total: len(all)}
	l.Runs = filterRuns(all, l.Runbook, l.State, l.Lock)
	l.Runbooks = distinct(all, func(r RunSummary) string { return r.Runbook })
	l.States = distinct(all, func(r RunSummary) string { return r.State })
	if s.opts.Campaigns != nil {
		if l.Campaigns, err = s.opts.Campaigns.Campaigns(); err != nil {
			return nil, fmt.Errorf("campaigns: %w", err)
		}
	}
	return l, nil
}

func (s *Server) listPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	l, err := s.runList(r)
	if err == nil {
		// The newest runs' pages are the likely next ones: parse their
		// runbooks meanwhile (a 10,000-step runbook takes a while).
		var metas []*journal.Meta
		infos, _ := s.allRuns()
		for _, ri := range infos[:min(len(infos), 5)] {
			if ri.State.Meta != nil && ri.State.State != journal.RunCorrupt {
				metas = append(metas, ri.State.Meta)
			}
		}
		go func() {
			for _, m := range metas {
				s.runbook(m)
			}
		}()
	}
	return "list.html", map[string]any{"Title": "Runs", "List": l, "User": userOf(r).Name}, err
}

func (s *Server) apiRuns(r *http.Request) (any, error) { return s.runList(r) }

func (s *Server) apiCampaigns(r *http.Request) (any, error) {
	if s.opts.Campaigns == nil {
		return map[string]any{"campaigns": []Campaign{}, "supported": false}, nil
	}
	c, err := s.opts.Campaigns.Campaigns()
	return map[string]any{"campaigns": c, "supported": true}, err
}

// runData reads a run for its page or the API.
func (s *Server) runData(id string) (*RunDetail, *journal.State, *runbookInfo, error) {
	ri, err := s.runInfo(id)
	if err != nil {
		return nil, nil, nil, err
	}
	var rb *runbookInfo
	if ri.State.Meta != nil && ri.State.State != journal.RunCorrupt {
		rb = s.runbook(ri.State.Meta)
	}
	return detail(ri, rb, time.Now()), ri.State, rb, nil
}

func (s *Server) apiRun(r *http.Request) (any, error) {
	d, _, _, err := s.runData(r.PathValue("id"))
	return d, err
}

func (s *Server) apiGraph(r *http.Request) (any, error) {
	d, _, rb, err := s.runData(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if rb == nil || rb.forward == "" {
		msg := d.GraphError
		if rb == nil {
			msg = "the journal is corrupt"
		}
		return map[string]any{"error": msg}, nil
	}
	return map[string]any{"mermaid": rb.forward, "rollback": rb.rollback, "nodes": nodeStates(d.Steps), "changed": rb.changed}, nil
}

func (s *Server) apiLogs(r *http.Request) (any, error) {
	ri, err := s.runInfo(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return s.runLogs(ri.State.Meta.ID, 1000), nil
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	d, st, rb, err := s.runData(r.PathValue("id"))
	if err != nil {
		return "", nil, err
	}
	q := r.URL.Query()
	steps := d.Steps
	if f := q.Get("state"); f != "" {
		steps = steps[:0:0]
		for _, sv := range d.Steps {
			if sv.State == f {
				steps = append(steps, sv)
			}
		}
	}
	page, _ := strconv.Atoi(q.Get("page"))
	pages := (len(steps) + stepsPerPage - 1) / stepsPerPage
	page = min(max(page, 1), max(pages, 1))
	shown := steps[min((page-1)*stepsPerPage, len(steps)):min(page*stepsPerPage, len(steps))]
	var approvable []*StepView
	for _, sv := range d.Steps {
		if sv.Approvable {
			approvable = append(approvable, sv)
		}
	}
	limit := stepsPerPage
	if q.Get("timeline") == "all" {
		limit = 0
	}
	rows, total := s.timeline(st, limit)
	var changed []string
	if rb != nil {
		changed = rb.changed
	}
	data := map[string]any{
		"Title": d.Run.Runbook + " " + d.Run.ID, "D": d, "Steps": shown, "Page": page, "Pages": max(pages, 1),
		"StateFilter": q.Get("state"), "Approvable": approvable, "CSRF": s.opts.Auth.csrfToken(w, r),
		"User": userOf(r).Name, "Seq": st.Seq, "Timeline": rows, "TimelineTotal": total,
		"AutoGraph": d.GraphNodes > 0 && d.GraphNodes <= autoGraphNodes, "Changed": changed,
		"Logs": s.runLogs(d.Run.ID, 200), "CanApprove": s.opts.Approve != nil,
	}
	return "run.html", data, nil
}

// timeline lays out run st's steps (limit rows; 0: all).
func (s *Server) timeline(st *journal.State, limit int) ([]Row, int) {
	var recs []*journal.Record // only undo times need the records
	for _, ss := range st.Steps {
		if ss.State == journal.StepUndoing || ss.State == journal.StepUndone || ss.State == journal.StepUndoFailed {
			recs = journalRecords(s.opts.Store, st.Meta.ID)
			break
		}
	}
	return timeline(st, recs, time.Now(), limit)
}

func (s *Server) apiTimeline(r *http.Request) (any, error) {
	ri, err := s.runInfo(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	limit := stepsPerPage
	if r.URL.Query().Get("all") != "" {
		limit = 0
	}
	rows, total := s.timeline(ri.State, limit)
	return map[string]any{"rows": rows, "total": total}, nil
}

// events streams a run's changes as server-sent events (docs/api.md).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ri, err := s.runInfo(r.PathValue("id"))
	if err != nil {
		if errors.Is(err, errNotFound) {
			s.notFound(w, r, err.Error())
		} else {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		}
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "streaming unsupported"})
		return
	}
	since, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if v := r.URL.Query().Get("since"); v != "" && since == 0 {
		since, _ = strconv.ParseInt(v, 10, 64)
	}
	id := ri.State.Meta.ID
	c, cancel, err := s.hub.subscribe(id, since)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("retry: 2000\n\n"))
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c.ch:
			if !ok {
				return
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
			// Send what queued meanwhile in the same write burst.
			for more := true; more; {
				select {
				case m, ok := <-c.ch:
					if !ok {
						fl.Flush()
						return
					}
					_, _ = w.Write(m)
				default:
					more = false
				}
			}
			fl.Flush()
		case <-ping.C:
			_, _ = w.Write([]byte(": ping\n\n"))
			fl.Flush()
		}
	}
}

// approve answers a waiting core.approve step of a run as the request's
// user; code is the HTTP status of an error.
func (s *Server) approve(r *http.Request, step, decision, csrf string) (runID string, code int, err error) {
	if err := s.opts.Auth.checkCSRF(r, csrf); err != nil {
		return "", http.StatusForbidden, err
	}
	if s.opts.Approve == nil {
		return "", http.StatusForbidden, errors.New("approvals are not possible with this state store")
	}
	u := userOf(r)
	if u == nil || u.Name == "" {
		return "", http.StatusForbidden, errors.New("approvals need a named user")
	}
	if decision != "approve" && decision != "reject" {
		return "", http.StatusBadRequest, fmt.Errorf("decision %q: want approve or reject", decision)
	}
	d, _, _, err := s.runData(r.PathValue("id"))
	if errors.Is(err, errNotFound) {
		return "", http.StatusNotFound, err
	}
	if err != nil {
		return "", http.StatusInternalServerError, err
	}
	for _, sv := range d.Steps {
		if sv.Address == step {
			if !sv.Approvable {
				return d.Run.ID, http.StatusConflict, fmt.Errorf("step %s is not waiting for an approval (state %s)", step, sv.State)
			}
			if err := s.opts.Approve(d.Run.ID, step, u.Name, decision == "approve"); err != nil {
				return d.Run.ID, http.StatusInternalServerError, err
			}
			s.opts.Logf("%s: step %s of run %s %s by %s", r.URL.Path, step, d.Run.ID, map[string]string{"approve": "approved", "reject": "rejected"}[decision], u.Name)
			return d.Run.ID, 0, nil
		}
	}
	return d.Run.ID, http.StatusNotFound, fmt.Errorf("run %s has no step %s", d.Run.ID, step)
}

// approveForm is the page's approval form: it answers, then goes back to
// the run's page.
func (s *Server) approveForm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, code, err := s.approve(r, r.PostForm.Get("step"), r.PostForm.Get("decision"), r.PostForm.Get("csrf"))
	if err != nil {
		s.render(w, code, "error.html", map[string]any{"Title": "Approval refused", "Message": err.Error(), "Back": id})
		return
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(id), http.StatusSeeOther)
}

// approveAPI is POST /api/runs/{id}/approve {"step","decision"} with the
// form token in X-CSRF-Token (or a bearer token).
func (s *Server) approveAPI(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Step     string `json:"step"`
		Decision string `json:"decision"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request body: " + err.Error()})
		return
	}
	id, code, err := s.approve(r, req.Step, req.Decision, r.Header.Get("X-CSRF-Token"))
	if err != nil {
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"run": id, "step": req.Step, "decision": req.Decision, "by": userOf(r).Name})
}

package viewer

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/session"
)

// RunSummary is a run in the list (GET /api/runs).
type RunSummary struct {
	ID         string           `json:"id"`
	State      string           `json:"state"`
	Runbook    string           `json:"runbook,omitempty"`
	User       string           `json:"user,omitempty"`
	Host       string           `json:"host,omitempty"`
	Lock       string           `json:"lock,omitempty"`
	Git        *journal.GitInfo `json:"git,omitempty"`
	Started    time.Time        `json:"started_at"`
	Updated    time.Time        `json:"updated_at"`
	DurationMS int64            `json:"duration_ms"`
	Steps      map[string]int   `json:"steps"`
	Resume     string           `json:"resume_command,omitempty"`
	Rollback   string           `json:"rollback_command,omitempty"`
	Warning    string           `json:"warning,omitempty"`
}

// RunDetail is one run (GET /api/runs/{id}).
type RunDetail struct {
	Run     RunSummary           `json:"run"`
	Command string               `json:"command,omitempty"`
	Dir     string               `json:"dir,omitempty"`
	Files   []journal.FileHash   `json:"files,omitempty"`
	Plugins []journal.PluginInfo `json:"plugins,omitempty"`
	Vars    map[string]any       `json:"vars,omitempty"`
	Steps   []*StepView          `json:"steps"`
	// Graph says whether the runbook's graph can be drawn (GraphError why
	// not) and how many nodes it has.
	GraphNodes int    `json:"graph_nodes"`
	GraphError string `json:"graph_error,omitempty"`
	// Corrupt is set when the journal is damaged: the rest is what the
	// records before the damage say.
	Corrupt string `json:"corrupt,omitempty"`
}

// StepView is one step instance.
type StepView struct {
	Address    string             `json:"address"`
	Name       string             `json:"name"`             // the step block's name (graph node)
	Node       string             `json:"node,omitempty"`   // its Mermaid node id
	Action     string             `json:"action,omitempty"` // plugin.action
	State      string             `json:"state"`
	Attempt    int                `json:"attempt,omitempty"`
	Started    *time.Time         `json:"started_at,omitempty"`
	Ended      *time.Time         `json:"ended_at,omitempty"`
	DurationMS int64              `json:"duration_ms,omitempty"`
	Attempts   []AttemptView      `json:"attempts,omitempty"`
	Inputs     map[string]any     `json:"inputs,omitempty"`
	Outputs    map[string]any     `json:"outputs,omitempty"`
	Error      *journal.ErrorInfo `json:"error,omitempty"`
	UndoError  *journal.ErrorInfo `json:"undo_error,omitempty"`
	Message    string             `json:"message,omitempty"`
	// Approvable: a core.approve step waiting for an answer.
	Approvable bool `json:"approvable,omitempty"`
}

// AttemptView is one attempt of a step.
type AttemptView struct {
	N       int                `json:"n"`
	Started time.Time          `json:"started_at"`
	Ended   *time.Time         `json:"ended_at,omitempty"`
	Error   *journal.ErrorInfo `json:"error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// stepName is the step block of an address: db of db["cozy"].
func stepName(addr string) string {
	if i := strings.IndexByte(addr, '['); i > 0 {
		return addr[:i]
	}
	return addr
}

func summary(ri *session.RunInfo, now time.Time) RunSummary {
	st := ri.State
	r := RunSummary{State: st.State, Started: st.Started, Updated: st.Updated, Steps: map[string]int{},
		Resume: ri.Next.Resume, Rollback: ri.Next.Rollback, Warning: st.Warning}
	if m := st.Meta; m != nil {
		r.ID, r.Runbook, r.User, r.Host, r.Lock, r.Git = m.ID, m.Runbook, m.User, m.Host, m.Lock, m.Git
	}
	end := st.Updated
	if st.State == journal.RunRunning || st.State == journal.RunRollingBack {
		end = now
	}
	if !st.Started.IsZero() && end.After(st.Started) {
		r.DurationMS = end.Sub(st.Started).Milliseconds()
	}
	for _, s := range st.Steps {
		r.Steps[s.State]++
	}
	return r
}

// render shows a journaled value: sensitive parts are "(sensitive)". The
// viewer never opens sealed values.
func render(v *journal.Value) map[string]any {
	if v == nil {
		return nil
	}
	cv, _, err := v.Decode(nil)
	if err != nil {
		return map[string]any{"(error)": "the journaled value cannot be read"}
	}
	return run.Render(cv)
}

func renderVar(v *journal.Value) any {
	cv, complete, err := v.Decode(nil)
	if err != nil || !complete {
		return run.Sensitive
	}
	return run.RenderValue(cv)
}

// stepView describes s; rb (may be nil) knows the runbook's steps.
func stepView(s *journal.StepState, rb *runbookInfo, runState string) *StepView {
	sv := &StepView{Address: s.Address, Name: stepName(s.Address), State: s.State, Attempt: s.Attempt,
		Started: timePtr(s.Started), Ended: timePtr(s.Ended), Inputs: render(s.Inputs), Outputs: render(s.Outputs),
		Error: s.Error, UndoError: s.UndoError, Message: s.Message}
	if !s.Started.IsZero() && !s.Ended.IsZero() {
		sv.DurationMS = s.Ended.Sub(s.Started).Milliseconds()
	}
	for _, a := range s.Attempts {
		sv.Attempts = append(sv.Attempts, AttemptView{N: a.N, Started: a.Started, Ended: timePtr(a.Ended), Error: a.Error})
	}
	if rb != nil {
		sv.Action = rb.actions[sv.Name]
		sv.Node = rb.nodes[sv.Name]
	}
	sv.Approvable = sv.Action == "core.approve" && s.State == journal.StepRunning && runState == journal.RunRunning
	return sv
}

func detail(ri *session.RunInfo, rb *runbookInfo, now time.Time) *RunDetail {
	st := ri.State
	d := &RunDetail{Run: summary(ri, now), Steps: make([]*StepView, 0, len(st.Order))}
	if m := st.Meta; m != nil {
		d.Command, d.Dir, d.Files, d.Plugins = m.Command, m.Dir, m.Files, m.Plugins
		for k, v := range m.Vars {
			if d.Vars == nil {
				d.Vars = map[string]any{}
			}
			d.Vars[k] = renderVar(v)
		}
	}
	if st.Corrupt != nil {
		d.Corrupt = st.Corrupt.Error()
	}
	for _, a := range st.Order {
		d.Steps = append(d.Steps, stepView(st.Steps[a], rb, st.State))
	}
	if rb != nil {
		d.GraphNodes, d.GraphError = len(rb.nodes), rb.err
	}
	return d
}

// nodeStates colours each graph node by its instances' states: the most
// pressing one wins (a failed instance makes the node failed).
func nodeStates(steps []*StepView) map[string]string {
	rank := map[string]int{journal.StepUndoFailed: 9, journal.StepFailed: 8, journal.StepRunning: 7, journal.StepUndoing: 6,
		journal.StepCancelled: 5, journal.StepPending: 4, journal.StepUndone: 3, journal.StepUndoWaived: 2, journal.StepSucceeded: 1, journal.StepSkipped: 0}
	out := map[string]string{}
	for _, s := range steps {
		if s.Node == "" {
			continue
		}
		if cur, ok := out[s.Node]; !ok || rank[s.State] > rank[cur] {
			out[s.Node] = s.State
		}
	}
	return out
}

// journalRecords reads run id's records from a local store ("": none;
// undo times are only in the records).
func journalRecords(store journal.Store, id string) []*journal.Record {
	ls, ok := store.(*journal.LocalStore)
	if !ok {
		return nil
	}
	f, err := os.Open(filepath.Join(ls.Location(id), "journal.ndjson"))
	if err != nil {
		return nil
	}
	defer f.Close()
	recs, _, _, _ := journal.ReadRecords(f)
	return recs
}

// Span is one bar of the timeline.
type Span struct {
	Kind  string  `json:"kind"` // attempt, retry (a failed attempt another followed), failed, undo, undo_failed, running
	Label string  `json:"label"`
	Left  float64 `json:"left"`  // percent of the run's duration
	Width float64 `json:"width"` // percent
}

// Row is one step instance on the timeline.
type Row struct {
	Address string `json:"address"`
	State   string `json:"state"`
	Spans   []Span `json:"spans"`
}

// timeline lays attempts and undos out over the run's duration (limit
// rows at most; 0: all).
func timeline(st *journal.State, recs []*journal.Record, now time.Time, limit int) (rows []Row, total int) {
	start, end := st.Started, st.Updated
	if st.State == journal.RunRunning || st.State == journal.RunRollingBack {
		end = now
	}
	dur := end.Sub(start)
	if dur <= 0 {
		dur = time.Millisecond
	}
	pct := func(t time.Time) float64 {
		p := float64(t.Sub(start)) / float64(dur) * 100
		return min(max(p, 0), 100)
	}
	span := func(kind, label string, from, to time.Time) Span {
		if to.IsZero() {
			to = end
		}
		l := pct(from)
		return Span{Kind: kind, Label: label, Left: l, Width: max(pct(to)-l, 0.2)}
	}
	undos := map[string][]Span{}
	undoStart := map[string]time.Time{}
	for _, r := range recs {
		switch r.Type {
		case journal.RecUndoStarted:
			undoStart[r.Step] = r.Time
		case journal.RecUndoSucceeded, journal.RecUndoFailed:
			kind := "undo"
			if r.Type == journal.RecUndoFailed {
				kind = "undo_failed"
			}
			undos[r.Step] = append(undos[r.Step], span(kind, "undo", undoStart[r.Step], r.Time))
			delete(undoStart, r.Step)
		}
	}
	for a, t := range undoStart {
		undos[a] = append(undos[a], span("undo", "undo (running)", t, time.Time{}))
	}
	total = len(st.Order)
	for _, a := range st.Order {
		if limit > 0 && len(rows) >= limit {
			break
		}
		s := st.Steps[a]
		row := Row{Address: a, State: s.State}
		for i, at := range s.Attempts {
			kind := "attempt"
			switch {
			case at.Ended.IsZero():
				kind = "running"
			case at.Error != nil && i < len(s.Attempts)-1:
				kind = "retry"
			case at.Error != nil:
				kind = "failed"
			}
			row.Spans = append(row.Spans, span(kind, "attempt "+itoa(at.N), at.Started, at.Ended))
		}
		row.Spans = append(row.Spans, undos[a]...)
		rows = append(rows, row)
	}
	return rows, total
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// filterRuns keeps the runs matching the list's filters ("" matches all).
func filterRuns(runs []RunSummary, runbook, state, lock string) []RunSummary {
	out := runs[:0:0]
	for _, r := range runs {
		if (runbook == "" || r.Runbook == runbook) && (state == "" || r.State == state) &&
			(lock == "" || strings.Contains(r.Lock, lock)) {
			out = append(out, r)
		}
	}
	return out
}

// distinct lists the different values of f over runs, sorted.
func distinct(runs []RunSummary, f func(RunSummary) string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		if v := f(r); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

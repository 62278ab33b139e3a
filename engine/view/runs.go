package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/run"
)

// RunRow is one run in a list of runs.
type RunRow struct {
	ID      string         `json:"id"`
	State   string         `json:"state"`
	Runbook string         `json:"runbook,omitempty"`
	Started time.Time      `json:"started"`
	Updated time.Time      `json:"updated"`
	User    string         `json:"user,omitempty"`
	Host    string         `json:"host,omitempty"`
	Lock    string         `json:"lock,omitempty"`
	Steps   map[string]int `json:"steps"`
}

// RowOf summarizes a run's journaled state.
func RowOf(st *journal.State) RunRow {
	r := RunRow{ID: st.Meta.ID, State: st.State, Runbook: st.Meta.Runbook, Started: st.Started, Updated: st.Updated,
		User: st.Meta.User, Host: st.Meta.Host, Lock: st.Meta.Lock, Steps: map[string]int{}}
	for _, s := range st.Steps {
		r.Steps[s.State]++
	}
	return r
}

// WriteRuns lists runs, newest first: a table, or JSON.
func WriteRuns(w io.Writer, states []*journal.State, asJSON bool) error {
	rows := []RunRow{}
	for _, st := range states {
		rows = append(rows, RowOf(st))
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tRUNBOOK\tSTARTED\tBY\tSTEPS")
	for _, r := range rows {
		var parts []string
		for _, k := range sortedKeys(r.Steps) {
			parts = append(parts, fmt.Sprintf("%d %s", r.Steps[k], k))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\t%s\n", r.ID, r.State, r.Runbook, r.Started.Local().Format("2006-01-02 15:04:05"), r.User, r.Host, strings.Join(parts, ", "))
	}
	return tw.Flush()
}

// WriteRun shows one run: who, where, timeline, outputs (decoded with
// sealer, bound to the run, where sealed), errors; as text or JSON.
func WriteRun(w io.Writer, st *journal.State, sealer *journal.Sealer, asJSON bool) error {
	outputs := func(s *journal.StepState) map[string]any {
		v, _, err := s.Outputs.Decode(sealer.Bind(s.Address, "outputs"))
		if err != nil || s.Outputs == nil {
			return nil
		}
		return run.Render(v)
	}
	if asJSON {
		type stepJSON struct {
			*journal.StepState
			Outputs map[string]any `json:"outputs,omitempty"`
			Inputs  any            `json:"inputs,omitempty"`
		}
		var steps []stepJSON
		for _, a := range st.Order {
			s := st.Steps[a]
			steps = append(steps, stepJSON{StepState: &journal.StepState{Address: s.Address, State: s.State, Attempt: s.Attempt, Error: s.Error, UndoError: s.UndoError,
				Message: s.Message, Started: s.Started, Ended: s.Ended, Attempts: s.Attempts}, Outputs: outputs(s)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"run": RowOf(st), "meta": metaView(st.Meta), "steps": steps, "warning": st.Warning})
	}
	return writeRunText(w, st, outputs)
}

func writeRunText(w io.Writer, st *journal.State, outputs func(*journal.StepState) map[string]any) error {
	m := st.Meta
	fmt.Fprintf(w, "Run %s: %s\n", m.ID, st.State)
	if m.Runbook != "" {
		fmt.Fprintf(w, "Runbook:  %s\n", m.Runbook)
	}
	for _, f := range m.Files {
		fmt.Fprintf(w, "File:     %s (sha256 %s)\n", f.Path, f.SHA256[:12])
	}
	if m.Git != nil {
		dirty := ""
		if m.Git.Dirty {
			dirty = " (dirty)"
		}
		fmt.Fprintf(w, "Git:      %s%s\n", m.Git.Commit, dirty)
	}
	fmt.Fprintf(w, "By:       %s@%s (pid %d)\n", m.User, m.Host, m.PID)
	fmt.Fprintf(w, "Started:  %s\nUpdated:  %s\n", st.Started.Local().Format(time.RFC3339), st.Updated.Local().Format(time.RFC3339))
	for _, r := range st.Resumes {
		if r.Meta != nil {
			fmt.Fprintf(w, "Resumed:  %s by %s@%s\n", r.Time.Local().Format(time.RFC3339), r.Meta.User, r.Meta.Host)
		}
	}
	if m.Lock != "" {
		fmt.Fprintf(w, "Lock:     %s\n", m.Lock)
	}
	if m.Key != "" {
		fmt.Fprintf(w, "Key:      %s (the state key its secrets are sealed with)\n", m.Key)
	}
	for _, p := range m.Plugins {
		fmt.Fprintf(w, "Plugin:   %s %s\n", p.Name, p.Version)
	}
	for _, k := range sortedKeys(m.Vars) {
		v, complete, err := m.Vars[k].Decode(nil)
		val := any("(sensitive)")
		if err == nil && complete {
			b, _ := json.Marshal(run.RenderValue(v))
			val = string(b)
		}
		fmt.Fprintf(w, "Var:      %s = %v\n", k, val)
	}
	if st.Warning != "" {
		fmt.Fprintf(w, "Warning:  %s\n", st.Warning)
	}
	fmt.Fprintln(w, "\nSteps:")
	for _, a := range st.Order {
		s := st.Steps[a]
		d := ""
		if !s.Ended.IsZero() && !s.Started.IsZero() {
			d = s.Ended.Sub(s.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "  %s  %-28s %-12s attempts=%d %s\n", s.Started.Local().Format("15:04:05"), s.Address, s.State, len(s.Attempts), d)
		if s.Error != nil {
			fmt.Fprintf(w, "      error: %s\n", s.Error.Message)
			if s.Error.Hint != "" {
				fmt.Fprintf(w, "      hint:  %s\n", s.Error.Hint)
			}
		}
		if s.UndoError != nil {
			fmt.Fprintf(w, "      undo error: %s\n", s.UndoError.Message)
		}
		if o := outputs(s); len(o) > 0 {
			b, _ := json.Marshal(o)
			fmt.Fprintf(w, "      outputs: %s\n", b)
		}
	}
	return nil
}

func metaView(m *journal.Meta) map[string]any {
	return map[string]any{"id": m.ID, "runbook": m.Runbook, "files": m.Files, "git": m.Git, "plugins": m.Plugins,
		"user": m.User, "host": m.Host, "pid": m.PID, "started": m.Started, "lock": m.Lock, "key": m.Key}
}

package view

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/run"
)

// RunsFormatVersion is the `format_version` of `runs ls -json` and
// `runs show -json` (docs/runs-json.md). It changes only when a field
// changes meaning or disappears.
const RunsFormatVersion = 1

// RunEntry is a run to show: its journaled state (State.State already says
// interrupted when its process died) and the commands that continue it.
type RunEntry struct {
	State            *journal.State
	Resume, Rollback string
}

// RunJSON is one run in `runs ls -json`, and the `run` of `runs show -json`
// (which adds the fields marked so).
type RunJSON struct {
	ID              string         `json:"id"`
	State           string         `json:"state"`
	Runbook         string         `json:"runbook,omitempty"`
	Dir             string         `json:"dir,omitempty"`
	StartedAt       time.Time      `json:"started_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	User            string         `json:"user,omitempty"`
	Host            string         `json:"host,omitempty"`
	PID             int            `json:"pid,omitempty"`
	Lock            string         `json:"lock,omitempty"`
	Steps           map[string]int `json:"steps"`
	ResumeCommand   string         `json:"resume_command,omitempty"`
	RollbackCommand string         `json:"rollback_command,omitempty"`
	Warning         string         `json:"warning,omitempty"`

	// runs show only:
	Command string               `json:"command,omitempty"`
	Files   []journal.FileHash   `json:"files,omitempty"`
	Git     *journal.GitInfo     `json:"git,omitempty"`
	Plugins []journal.PluginInfo `json:"plugins,omitempty"`
	Key     string               `json:"key,omitempty"` // fingerprint of the state key its secrets are sealed with
	Vars    map[string]any       `json:"vars,omitempty"`
	Resumes []ResumeJSON         `json:"resumes,omitempty"`
}

// ResumeJSON is one resume of a run.
type ResumeJSON struct {
	At   time.Time `json:"at"`
	User string    `json:"user,omitempty"`
	Host string    `json:"host,omitempty"`
	PID  int       `json:"pid,omitempty"`
}

// StepJSON is one step instance in `runs show -json`.
type StepJSON struct {
	Address   string             `json:"address"`
	State     string             `json:"state"`
	StartedAt *time.Time         `json:"started_at,omitempty"`
	EndedAt   *time.Time         `json:"ended_at,omitempty"`
	Attempts  []AttemptJSON      `json:"attempts,omitempty"`
	Error     *journal.ErrorInfo `json:"error,omitempty"`
	UndoError *journal.ErrorInfo `json:"undo_error,omitempty"`
	Message   string             `json:"message,omitempty"`
	Outputs   map[string]any     `json:"outputs,omitempty"`
}

// AttemptJSON is one attempt of a step.
type AttemptJSON struct {
	N         int                `json:"n"`
	StartedAt time.Time          `json:"started_at"`
	EndedAt   *time.Time         `json:"ended_at,omitempty"`
	Error     *journal.ErrorInfo `json:"error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// runJSON summarizes a run.
func runJSON(e RunEntry) RunJSON {
	st := e.State
	r := RunJSON{State: st.State, StartedAt: st.Started, UpdatedAt: st.Updated, Steps: map[string]int{},
		ResumeCommand: e.Resume, RollbackCommand: e.Rollback, Warning: st.Warning}
	if m := st.Meta; m != nil {
		r.ID, r.Runbook, r.Dir, r.User, r.Host, r.PID, r.Lock = m.ID, m.Runbook, m.Dir, m.User, m.Host, m.PID, m.Lock
	}
	for _, s := range st.Steps {
		r.Steps[s.State]++
	}
	return r
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteRuns lists runs, newest first: a table, or JSON.
func WriteRuns(w io.Writer, runs []RunEntry, asJSON bool) error {
	rows := []RunJSON{}
	for _, e := range runs {
		rows = append(rows, runJSON(e))
	}
	if asJSON {
		return writeJSON(w, map[string]any{"format_version": RunsFormatVersion, "runs": rows})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATE\tRUNBOOK\tSTARTED\tBY\tSTEPS\tNEXT")
	for _, r := range rows {
		var parts []string
		for _, k := range sortedKeys(r.Steps) {
			parts = append(parts, fmt.Sprintf("%d %s", r.Steps[k], k))
		}
		nextCmd := r.ResumeCommand
		if nextCmd == "" {
			nextCmd = r.RollbackCommand
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s@%s\t%s\t%s\n", r.ID, r.State, r.Runbook, r.StartedAt.Local().Format("2006-01-02 15:04:05"), r.User, r.Host, strings.Join(parts, ", "), nextCmd)
	}
	return tw.Flush()
}

// WriteRun shows one run: who, where, timeline, outputs (decoded with
// sealer, bound to the run, where sealed), errors; as text or JSON.
func WriteRun(w io.Writer, e RunEntry, sealer *journal.Sealer, asJSON bool) error {
	st := e.State
	outputs := func(s *journal.StepState) map[string]any {
		v, _, err := s.Outputs.Decode(sealer.Bind(s.Address, "outputs"))
		if err != nil || s.Outputs == nil {
			return nil
		}
		return run.Render(v)
	}
	if !asJSON {
		return writeRunText(w, e, outputs)
	}
	r := runJSON(e)
	if m := st.Meta; m != nil {
		r.Command, r.Files, r.Git, r.Plugins, r.Key = m.Command, m.Files, m.Git, m.Plugins, m.Key
		for _, k := range sortedKeys(m.Vars) {
			if r.Vars == nil {
				r.Vars = map[string]any{}
			}
			r.Vars[k] = varValue(m.Vars[k])
		}
	}
	for _, res := range st.Resumes {
		rj := ResumeJSON{At: res.Time}
		if res.Meta != nil {
			rj.User, rj.Host, rj.PID = res.Meta.User, res.Meta.Host, res.Meta.PID
		}
		r.Resumes = append(r.Resumes, rj)
	}
	steps := []StepJSON{}
	for _, a := range st.Order {
		s := st.Steps[a]
		sj := StepJSON{Address: s.Address, State: s.State, StartedAt: timePtr(s.Started), EndedAt: timePtr(s.Ended),
			Error: s.Error, UndoError: s.UndoError, Message: s.Message, Outputs: outputs(s)}
		for _, at := range s.Attempts {
			sj.Attempts = append(sj.Attempts, AttemptJSON{N: at.N, StartedAt: at.Started, EndedAt: timePtr(at.Ended), Error: at.Error})
		}
		steps = append(steps, sj)
	}
	return writeJSON(w, map[string]any{"format_version": RunsFormatVersion, "run": r, "steps": steps})
}

// varValue is a journaled variable as shown: its value, or "(sensitive)"
// when it is sealed or was not stored.
func varValue(v *journal.Value) any {
	cv, complete, err := v.Decode(nil)
	if err != nil || !complete {
		return "(sensitive)"
	}
	return run.RenderValue(cv)
}

func writeRunText(w io.Writer, e RunEntry, outputs func(*journal.StepState) map[string]any) error {
	st := e.State
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
		val := varValue(m.Vars[k])
		if val != "(sensitive)" {
			b, _ := json.Marshal(val)
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
	if e.Resume != "" {
		fmt.Fprintf(w, "\nResume with:   %s\n", e.Resume)
	}
	if e.Rollback != "" {
		fmt.Fprintf(w, "Roll back with: %s\n", e.Rollback)
	}
	return nil
}

// WriteRecovery tells, after a rollback_failed run, which undos failed and
// why, and the three ways on: fix and roll back again, roll back skipping
// the failed steps (recorded in the journal), or release the run's lock.
func WriteRecovery(w io.Writer, m *mask.Masker, failed []*journal.StepState, retry, skip, unlock string) {
	var b strings.Builder
	b.WriteString("\nThe rollback did not finish:\n")
	for _, s := range failed {
		msg := "(no error journaled)"
		if e := s.UndoError; e != nil {
			msg = e.Message
			if e.Kind != "" {
				msg = e.Kind + ": " + msg
			}
			if e.Hint != "" {
				msg += " (hint: " + e.Hint + ")"
			}
		}
		fmt.Fprintf(&b, "  undo of %s failed: %s\n", s.Address, msg)
	}
	b.WriteString("Ways on:\n")
	fmt.Fprintf(&b, "  1. fix the cause, then roll back again:  %s\n", retry)
	if skip != "" {
		fmt.Fprintf(&b, "  2. leave the failed steps as they are (recorded in the journal) and undo the rest:  %s\n", skip)
	}
	if unlock != "" {
		fmt.Fprintf(&b, "  3. leave the run as it is and free its lock for new runs:  %s\n", unlock)
	}
	io.WriteString(w, m.Mask(b.String()))
}

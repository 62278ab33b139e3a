// Package view renders engine events for people and programs: plain lines
// (non-TTY, CI logs, and terminals for now), and one JSON object per line
// (`-json`, see docs/events.md).
package view

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/run"
)

// JSON writes each event as one JSON line. The masker is applied once more
// to the event's values before encoding, as a last line of defence (never
// to the encoded line: that would rewrite keys and break numbers).
func JSON(w io.Writer, m *mask.Masker) event.Sink {
	var mu sync.Mutex
	return event.Func(func(e event.Event) {
		b, err := json.Marshal(masked(e, m))
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		w.Write(append(b, '\n'))
	})
}

// Plain writes one readable line per event, for logs and terminals.
// Verbose adds plugin debug logs and progress lines.
type Plain struct {
	W       io.Writer
	Mask    *mask.Masker
	Verbose bool

	mu sync.Mutex
	// lastProgress throttles progress lines per step; guarded by mu.
	lastProgress map[string]time.Time
}

// NewPlain returns a plain renderer on w.
func NewPlain(w io.Writer, m *mask.Masker) *Plain {
	return &Plain{W: w, Mask: m, lastProgress: map[string]time.Time{}}
}

var _ event.OutputsSink = (*Plain)(nil)

// ShowsOutputs implements event.OutputsSink: plain lines name the steps,
// the summary shows the runbook's outputs.
func (p *Plain) ShowsOutputs() bool { return false }

// masked is e with every value masked (see event.Event.Masked).
func masked(e event.Event, m *mask.Masker) event.Event {
	if m.Empty() {
		return e
	}
	return e.Masked(m.Mask)
}

// Emit implements event.Sink.
func (p *Plain) Emit(e event.Event) {
	line := p.line(masked(e, p.Mask))
	if line == "" {
		return
	}
	b := append([]byte(line), '\n')
	p.mu.Lock()
	defer p.mu.Unlock()
	p.W.Write(b)
}

func (p *Plain) line(e event.Event) string {
	s := func(format string, a ...any) string {
		return e.Time.Local().Format("15:04:05") + " " + fmt.Sprintf(format, a...)
	}
	att := ""
	if e.Attempt > 1 {
		att = fmt.Sprintf(" (attempt %d)", e.Attempt)
	}
	switch e.Type {
	case event.RunStarted:
		return s("run %s started: %s", e.RunID, e.Message)
	case event.StepStarted:
		// The two lines of every step, built without fmt.
		b := make([]byte, 0, 32+len(e.Step)+len(att)+len(e.Action))
		b = e.Time.Local().AppendFormat(b, "15:04:05")
		b = append(append(append(append(append(append(append(b, ' '), e.Step...), ": started"...), att...), " ["...), e.Action...), ']')
		return string(b)
	case event.StepReused:
		return s("%s: already done in this run, kept its outputs", e.Step)
	case event.StepLog:
		if e.Level == "debug" && !p.Verbose {
			return ""
		}
		return s("%s: %s: %s", e.Step, e.Level, e.Message)
	case event.StepProgress:
		p.mu.Lock()
		last := p.lastProgress[e.Step]
		now := time.Now()
		ok := now.Sub(last) >= 2*time.Second || (e.Total > 0 && e.Current >= e.Total)
		if ok {
			p.lastProgress[e.Step] = now
		}
		p.mu.Unlock()
		if !ok {
			return ""
		}
		cur, total := clampProgress(e.Current, e.Total)
		if total > 0 {
			return s("%s: %d/%d %s (%d%%)", e.Step, cur, total, e.Unit, int(float64(cur)*100/float64(total)))
		}
		return s("%s: %d %s", e.Step, cur, e.Unit)
	case event.StepCheckpoint:
		if !p.Verbose {
			return ""
		}
		return s("%s: checkpoint saved", e.Step)
	case event.StepRetry:
		return s("%s: failed%s, retrying in %s: %s", e.Step, att, time.Duration(e.DelayMS)*time.Millisecond, e.Error)
	case event.StepSucceeded:
		b := make([]byte, 0, 40+len(e.Step)+len(att))
		b = e.Time.Local().AppendFormat(b, "15:04:05")
		b = append(append(append(append(append(b, ' '), e.Step...), ": done"...), att...), " in "...)
		b = append(b, (time.Duration(e.DurationMS) * time.Millisecond).String()...)
		return string(b)
	case event.StepFailed:
		l := s("%s: FAILED%s: %s", e.Step, att, e.Error)
		if e.Hint != "" {
			l += "\n         hint: " + e.Hint
		}
		return l
	case event.StepSkipped:
		return s("%s: skipped (%s)", e.Step, e.Message)
	case event.StepCancelled:
		return s("%s: interrupted; it will run again on resume", e.Step)
	case event.RollbackStarted:
		return s("rolling back completed steps, in reverse order")
	case event.UndoStarted:
		return s("%s: undoing", e.Step)
	case event.UndoSucceeded:
		return s("%s: undone", e.Step)
	case event.UndoFailed:
		return s("%s: UNDO FAILED: %s", e.Step, e.Error)
	case event.UndoSkipped:
		return s("%s: %s", e.Step, e.Message)
	case event.Warning:
		if e.Step != "" {
			return s("warning: %s: %s", e.Step, e.Message)
		}
		return s("warning: %s", e.Message)
	case event.RunFinished:
		return "" // the summary says it
	}
	return ""
}

// StepLine is one line of the end-of-run summary.
type StepLine struct {
	Address  string
	State    string
	Attempts int
	Duration time.Duration
	Error    string
}

// Summary is what the end of a run prints.
type Summary struct {
	RunID    string
	State    string
	Steps    []StepLine
	Outputs  map[string]any // rendered; sensitive ones already hidden
	Journal  string
	Resume   string // exact command, "" when not resumable
	Rollback string // exact command, "" when nothing to roll back
	Duration time.Duration
	Error    string
}

// WriteSummary prints s for people. Its values are masked before they are
// formatted, never the formatted text.
func WriteSummary(w io.Writer, m *mask.Masker, s *Summary) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nRun %s: %s in %s\n", s.RunID, strings.ReplaceAll(s.State, "_", " "), s.Duration.Round(time.Millisecond))
	counts := map[string]int{}
	for _, st := range s.Steps {
		counts[st.State]++
	}
	var parts []string
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(&b, "Steps: %d (%s)\n", len(s.Steps), strings.Join(parts, ", "))
	if len(s.Steps) <= 50 {
		for _, st := range s.Steps {
			extra := ""
			if st.Attempts > 1 {
				extra = fmt.Sprintf(", %d attempts", st.Attempts)
			}
			if st.Duration > 0 {
				extra += ", " + st.Duration.Round(time.Millisecond).String()
			}
			fmt.Fprintf(&b, "  %-30s %s%s\n", m.Mask(st.Address), st.State, extra)
			if st.Error != "" {
				fmt.Fprintf(&b, "  %-30s   %s\n", "", m.Mask(st.Error))
			}
		}
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "Error: %s\n", m.Mask(s.Error))
	}
	if len(s.Outputs) > 0 {
		outputs := masked(event.Event{Outputs: s.Outputs}, m).Outputs
		b.WriteString("Outputs:\n")
		for _, k := range sortedKeys(outputs) {
			j, _ := json.Marshal(outputs[k])
			fmt.Fprintf(&b, "  %s = %s\n", k, j)
		}
	}
	fmt.Fprintf(&b, "Journal: %s\n", m.Mask(s.Journal))
	if s.Resume != "" {
		fmt.Fprintf(&b, "Resume:   %s\n", m.Mask(s.Resume))
	}
	if s.Rollback != "" {
		fmt.Fprintf(&b, "Rollback: %s\n", m.Mask(s.Rollback))
	}
	io.WriteString(w, b.String())
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SummaryOf builds the end-of-run summary of res; resume and rollback are
// the commands that continue the run ("" when they do not apply).
func SummaryOf(runID, journal string, res *run.Result, resume, rollback string) *Summary {
	sum := &Summary{RunID: runID, State: res.State, Journal: journal, Duration: res.Duration, Resume: resume, Rollback: rollback}
	for _, in := range res.Instances {
		line := StepLine{Address: in.Address, State: in.State, Attempts: in.Attempt}
		if !in.Ended.IsZero() && !in.Started.IsZero() {
			line.Duration = in.Ended.Sub(in.Started)
		}
		if in.Err != nil {
			line.Error = in.Err.Error()
			if se, ok := in.Err.(*run.StepError); ok {
				line.Error = se.Msg
				if se.Kind != "" {
					line.Error = string(se.Kind) + ": " + se.Msg
				}
			}
		}
		sum.Steps = append(sum.Steps, line)
	}
	if res.Err != nil {
		sum.Error = res.Err.Error()
	}
	if len(res.Outputs) > 0 {
		sum.Outputs = map[string]any{}
		for k, v := range res.Outputs {
			sum.Outputs[k] = run.RenderValue(v)
		}
	}
	return sum
}

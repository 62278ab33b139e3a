// Package event defines the events the engine emits while it runs. The
// engine never prints: views (engine/view) render these events for a
// terminal, for plain logs, or as versioned JSON lines (`-json`).
package event

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// Version is the version of the event format. It changes only when a field
// changes meaning or disappears; new fields and new types keep it.
const Version = 1

// Type names what happened.
type Type string

// Event types, in the order they usually appear in a run.
const (
	RunStarted      Type = "run_started"      // Message: runbook name; Fields: journal, lock
	StepStarted     Type = "step_started"     // one attempt of a step begins
	StepLog         Type = "step_log"         // a log line from the plugin (Level, Message)
	StepProgress    Type = "step_progress"    // Current/Total/Unit
	StepCheckpoint  Type = "step_checkpoint"  // the step journaled a checkpoint
	StepRetry       Type = "step_retry"       // the attempt failed and will be retried after Delay
	StepSucceeded   Type = "step_succeeded"   // Outputs (sensitive ones hidden)
	StepFailed      Type = "step_failed"      // Error, Kind, Hint
	StepSkipped     Type = "step_skipped"     // Message: why (condition false, upstream failed)
	StepCancelled   Type = "step_cancelled"   // interrupted; will run again on resume
	StepReused      Type = "step_reused"      // resume: kept the journaled outputs
	RollbackStarted Type = "rollback_started" // the undo phase begins
	UndoStarted     Type = "undo_started"
	UndoSucceeded   Type = "undo_succeeded"
	UndoFailed      Type = "undo_failed"
	UndoSkipped     Type = "undo_skipped" // nothing to undo, or a later undo failed
	Warning         Type = "warning"
	RunFinished     Type = "run_finished" // State, Outputs, Fields: journal, resume, rollback
)

// Event is one thing that happened. Every text field has been through the
// engine's secret masker before the event is emitted.
type Event struct {
	V       int       `json:"v"`
	Type    Type      `json:"type"`
	Time    time.Time `json:"time"`
	RunID   string    `json:"run_id,omitempty"`
	Step    string    `json:"step,omitempty"` // step address: `db` or `db["cozy"]`
	Action  string    `json:"action,omitempty"`
	Attempt int       `json:"attempt,omitempty"`
	State   string    `json:"state,omitempty"` // run state on run_finished
	Level   string    `json:"level,omitempty"`
	Message string    `json:"message,omitempty"`
	Error   string    `json:"error,omitempty"`
	Kind    string    `json:"kind,omitempty"`
	Hint    string    `json:"hint,omitempty"`
	// Progress.
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
	Unit    string `json:"unit,omitempty"`
	// Delay before the next attempt (step_retry), and the elapsed time of
	// the step or run (succeeded, failed, finished), in milliseconds.
	DelayMS    int64 `json:"delay_ms,omitempty"`
	DurationMS int64 `json:"duration_ms,omitempty"`
	// Outputs are rendered as JSON-compatible values; sensitive ones are the
	// string "(sensitive)".
	Outputs map[string]any `json:"outputs,omitempty"`
	// Fields holds extra strings: "journal", "resume", "rollback", "lock".
	Fields map[string]string `json:"fields,omitempty"`
}

// Sink receives events. Emit is called from many goroutines; it must be
// safe for concurrent use and should return quickly.
type Sink interface {
	Emit(Event)
}

// Func adapts a function to a Sink.
type Func func(Event)

// Emit calls f.
func (f Func) Emit(e Event) { f(e) }

// Discard drops every event.
var Discard Sink = Func(func(Event) {})

// Recorder keeps every event; tests use it.
type Recorder struct {
	mu     sync.Mutex
	events []Event // guarded by mu
}

// Emit records e.
func (r *Recorder) Emit(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// Events returns a copy of what was recorded.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// OutputsSink is implemented by a Sink that says whether it shows the
// outputs of step_succeeded events. The executor renders them only for a
// sink that does; a Sink that does not implement OutputsSink gets them.
type OutputsSink interface {
	Sink
	ShowsOutputs() bool
}

// ShowsOutputs reports whether s shows step outputs.
func ShowsOutputs(s Sink) bool {
	if o, ok := s.(OutputsSink); ok {
		return o.ShowsOutputs()
	}
	return true
}

// Multi sends every event to each sink in turn.
func Multi(sinks ...Sink) Sink { return multi(sinks) }

type multi []Sink

var _ OutputsSink = multi(nil)

func (m multi) Emit(e Event) {
	for _, s := range m {
		s.Emit(e)
	}
}

// ShowsOutputs is true when one of the sinks shows outputs.
func (m multi) ShowsOutputs() bool {
	for _, s := range m {
		if ShowsOutputs(s) {
			return true
		}
	}
	return false
}

// Masked returns e with mask applied to each text value it carries: Step,
// Action, Message, Error, Hint, Unit, the values of Fields, and every
// string, map key and number inside the values of Outputs. A number whose decimal text
// mask changes becomes the masked text, a string. What names the event
// rather than carrying a value is left alone: its type, time, run ID,
// state, level, kind and counts. Views mask events this way before
// encoding them; masking the encoded text instead would rewrite JSON keys
// and timestamps that happen to hold a short secret.
func (e Event) Masked(mask func(string) string) Event {
	e.Step = mask(e.Step)
	e.Action = mask(e.Action)
	e.Message = mask(e.Message)
	e.Error = mask(e.Error)
	e.Hint = mask(e.Hint)
	e.Unit = mask(e.Unit)
	if e.Fields != nil {
		f := make(map[string]string, len(e.Fields))
		for k, v := range e.Fields {
			f[k] = mask(v)
		}
		e.Fields = f
	}
	if e.Outputs != nil {
		// The outputs' names come from the runbook and the plugin's schema.
		o := make(map[string]any, len(e.Outputs))
		for k, v := range e.Outputs {
			o[k] = maskValue(v, mask)
		}
		e.Outputs = o
	}
	return e
}

// maskValue masks a rendered value (see Event.Outputs), copying what it
// changes.
func maskValue(v any, mask func(string) string) any {
	number := func(s string) any {
		if m := mask(s); m != s {
			return m
		}
		return v
	}
	switch x := v.(type) {
	case string:
		return mask(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[mask(k)] = maskValue(e, mask)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskValue(e, mask)
		}
		return out
	case int64:
		return number(strconv.FormatInt(x, 10))
	case int:
		return number(strconv.Itoa(x))
	case float64:
		return number(strconv.FormatFloat(x, 'f', -1, 64))
	case json.Number:
		return number(x.String())
	}
	return v
}

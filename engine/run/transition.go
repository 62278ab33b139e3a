package run

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
)

// JournalError is returned by Apply and Rollback when the journal could not
// be written: the run stopped, the plugin calls in flight were cancelled and
// waited for, and nothing started after the failure.
type JournalError struct{ Err error }

func (e *JournalError) Error() string {
	return fmt.Sprintf("the journal cannot be written, so the run stopped (running steps were cancelled): %v", e.Err)
}

func (e *JournalError) Unwrap() error { return e.Err }

// extra is what a state change's event carries beyond its record.
type extra struct {
	action   string
	duration int64 // ms
	delay    int64 // ms
	outputs  map[string]any
	// queued: the record need not be durable before transition returns,
	// because whatever acts on it is journaled durably after it (a
	// dependent's start, the rollback's start, the run's end): a later
	// Append makes it durable too. If a crash loses it, the step is in
	// flight: resume applies it again with the same idempotency key.
	queued bool
}

// transition is the one place a state change is made: it journals r
// (durably unless x.queued), then emits the event derived from it. Masking happens once, on
// the record, before either is written. After a journal failure it writes
// nothing and returns that failure.
func (e *executor) transition(r *journal.Record, x extra) error {
	if err := e.stop.err(); err != nil {
		return err
	}
	e.maskRecord(r)
	if e.opts.Journal != nil {
		write := e.opts.Journal.Append
		if x.queued {
			write = e.opts.Journal.AppendNoWait
		}
		if err := write(r); err != nil {
			return e.stop.halt(&JournalError{Err: fmt.Errorf("%s %s: %w", r.Type, r.Step, err)})
		}
	}
	if ev, ok := eventOf(r, x); ok {
		e.publish(ev)
	}
	return nil
}

func (e *executor) maskRecord(r *journal.Record) {
	if r.Error != nil {
		r.Error.Message = e.mask.Mask(r.Error.Message)
		r.Error.Hint = e.mask.Mask(r.Error.Hint)
	}
	r.Message = e.mask.Mask(r.Message)
}

// recordEvents maps a state change's record to the event it announces.
var recordEvents = map[journal.RecType]event.Type{
	journal.RecAttemptStarted: event.StepStarted,
	journal.RecCheckpoint:     event.StepCheckpoint,
	journal.RecUndoCheckpoint: event.StepCheckpoint,
	journal.RecAttemptFailed:  event.StepRetry,
	journal.RecStepSucceeded:  event.StepSucceeded,
	journal.RecStepFailed:     event.StepFailed,
	journal.RecStepSkipped:    event.StepSkipped,
	journal.RecStepCancelled:  event.StepCancelled,
	journal.RecUndoStarted:    event.UndoStarted,
	journal.RecUndoSucceeded:  event.UndoSucceeded,
	journal.RecUndoFailed:     event.UndoFailed,
}

// eventOf is the event a journal record announces.
func eventOf(r *journal.Record, x extra) (event.Event, bool) {
	ev := event.Event{Step: r.Step, Attempt: r.Attempt, Message: r.Message, Action: x.action,
		DurationMS: x.duration, DelayMS: x.delay, Outputs: x.outputs}
	if r.Error != nil {
		ev.Error, ev.Kind, ev.Hint = r.Error.Message, r.Error.Kind, r.Error.Hint
	}
	switch r.Type {
	case journal.RecUndoCheckpoint:
		ev.Message = "undo"
	case journal.RecAttemptFailed:
		ev.Message = "" // the record's "retry" is the event's type
	case journal.RecRunState:
		if r.State != journal.RunRollingBack {
			return ev, false
		}
		return event.Event{Type: event.RollbackStarted}, true
	}
	t, ok := recordEvents[r.Type]
	if !ok {
		return ev, false
	}
	ev.Type = t
	return ev, true
}

// emit sends an event that no record backs (logs, progress, warnings),
// masked.
func (e *executor) emit(ev event.Event) {
	ev.Message = e.mask.Mask(ev.Message)
	ev.Error = e.mask.Mask(ev.Error)
	ev.Hint = e.mask.Mask(ev.Hint)
	e.publish(ev)
}

// publish stamps an already masked event and hands it to the sink.
func (e *executor) publish(ev event.Event) {
	ev.V = event.Version
	if ev.Time.IsZero() {
		ev.Time = e.now().UTC()
	}
	ev.RunID = e.opts.RunID
	e.sink.Emit(ev)
}

// stopper ends a walk on the first error that forbids going on (a journal
// that cannot be written): it cancels the walk's context, so that plugin
// calls in flight end, and from then on nothing starts.
type stopper struct {
	stopped atomic.Bool // fast path of err
	mu      sync.Mutex
	first   error // guarded by mu
	cancel  func()
}

// halt records err (the first one wins), cancels the walk and returns the
// first error.
func (s *stopper) halt(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = err
		s.stopped.Store(true)
		if s.cancel != nil {
			s.cancel()
		}
	}
	return s.first
}

// err is the error that stopped the walk, or nil.
func (s *stopper) err() error {
	if !s.stopped.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

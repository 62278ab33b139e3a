package journal

import (
	"time"
)

// Step states.
const (
	StepPending    = "pending"
	StepRunning    = "running" // an attempt started and did not end: in flight
	StepSucceeded  = "succeeded"
	StepFailed     = "failed"
	StepSkipped    = "skipped"
	StepCancelled  = "cancelled"
	StepUndoing    = "undoing"
	StepUndone     = "undone"
	StepUndoFailed = "undo_failed"
	StepUndoWaived = "undo_waived" // not undone by the operator's choice (rollback -skip)
)

// State is a run rebuilt from its journal.
type State struct {
	Meta    *Meta
	State   string
	Steps   map[string]*StepState // by address
	Order   []string              // addresses in the order they first appear
	Resumes []*Record             // run_resumed records
	Started time.Time
	Updated time.Time // time of the last record
	// Warning is set when a torn last record was dropped, or says why the
	// journal is corrupt.
	Warning string
	// Corrupt is set, and State is RunCorrupt, when the journal is damaged
	// before its last record: the rest of State is what the records before
	// the damage say.
	Corrupt *CorruptError
	// Seq is the last record's sequence number.
	Seq int64
}

// StepState is one step instance as journaled.
type StepState struct {
	Address    string
	State      string
	Attempt    int // last attempt number
	Inputs     *Value
	Outputs    *Value
	Checkpoint *Blob
	UndoState  *Blob
	Error      *ErrorInfo
	UndoError  *ErrorInfo
	Message    string // why it was skipped
	Started    time.Time
	Ended      time.Time
	Attempts   []Attempt
}

// Attempt is one try of a step.
type Attempt struct {
	N       int
	Started time.Time
	Ended   time.Time
	Error   *ErrorInfo
}

// Replay builds the State from records.
func Replay(recs []*Record) *State {
	s := &State{Steps: map[string]*StepState{}}
	step := func(addr string) *StepState {
		st, ok := s.Steps[addr]
		if !ok {
			st = &StepState{Address: addr, State: StepPending}
			s.Steps[addr] = st
			s.Order = append(s.Order, addr)
		}
		return st
	}
	endAttempt := func(st *StepState, r *Record) {
		for i := len(st.Attempts) - 1; i >= 0; i-- {
			if st.Attempts[i].N == r.Attempt {
				st.Attempts[i].Ended = r.Time
				st.Attempts[i].Error = r.Error
				break
			}
		}
		st.Ended = r.Time
	}
	for _, r := range recs {
		s.Seq = r.Seq
		s.Updated = r.Time
		switch r.Type {
		case RecRunStarted:
			s.Meta = r.Meta
			s.Started = r.Time
			s.State = RunRunning
		case RecRunResumed:
			s.Resumes = append(s.Resumes, r)
			s.State = RunRunning
		case RecRunState:
			s.State = r.State
		case RecAttemptStarted:
			st := step(r.Step)
			st.State = StepRunning
			st.Attempt = r.Attempt
			if r.Inputs != nil {
				st.Inputs = r.Inputs
			}
			st.Error = nil
			if st.Started.IsZero() {
				st.Started = r.Time
			}
			st.Attempts = append(st.Attempts, Attempt{N: r.Attempt, Started: r.Time})
		case RecCheckpoint:
			st := step(r.Step)
			st.Checkpoint = r.Checkpoint
		case RecAttemptFailed:
			st := step(r.Step)
			endAttempt(st, r)
			if r.UndoState != nil {
				st.UndoState = r.UndoState
			}
			st.Error = r.Error
			st.Checkpoint = nil
		case RecStepSucceeded:
			st := step(r.Step)
			endAttempt(st, r)
			st.State = StepSucceeded
			st.Outputs = r.Outputs
			st.UndoState = r.UndoState
			st.Error = nil
		case RecStepFailed:
			st := step(r.Step)
			endAttempt(st, r)
			st.State = StepFailed
			st.Error = r.Error
			if r.UndoState != nil {
				st.UndoState = r.UndoState
			}
		case RecStepSkipped:
			st := step(r.Step)
			st.State = StepSkipped
			st.Message = r.Message
		case RecStepCancelled:
			st := step(r.Step)
			st.State = StepCancelled
			if r.UndoState != nil {
				st.UndoState = r.UndoState
			}
		case RecUndoStarted:
			st := step(r.Step)
			st.State = StepUndoing
		case RecUndoSucceeded:
			st := step(r.Step)
			st.State = StepUndone
			st.UndoError = nil
		case RecUndoFailed:
			st := step(r.Step)
			st.State = StepUndoFailed
			st.UndoError = r.Error
		case RecUndoWaived:
			st := step(r.Step)
			st.State = StepUndoWaived
			st.Message = r.Message
		}
	}
	return s
}

// Unfinished reports whether the run can be resumed or must be rolled back
// before its lock is free.
func (s *State) Unfinished() bool { return !Finished(s.State) }

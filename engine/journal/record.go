// Package journal keeps the durable record of every run: an append-only log
// of state changes, each written and fsynced (grouped across concurrent
// steps) before the engine acts on it. The default Store keeps one
// directory per run under `.runbook/runs/<ulid>/`; Store is an interface so
// that a shared backend for teams can be added.
package journal

import (
	"time"
)

// RecType is the kind of a journal record.
type RecType string

// Record types.
const (
	RecRunStarted     RecType = "run_started"     // Meta
	RecRunResumed     RecType = "run_resumed"     // Meta.User/Host/PID of who resumed, Message: command
	RecRunState       RecType = "run_state"       // State: a RunState value
	RecAttemptStarted RecType = "attempt_started" // Step, Attempt, Inputs
	RecCheckpoint     RecType = "checkpoint"      // Step, Attempt, Checkpoint
	RecAttemptFailed  RecType = "attempt_failed"  // Step, Attempt, Error, UndoState; Message "retry" when another attempt follows
	RecStepSucceeded  RecType = "step_succeeded"  // Step, Attempt, Outputs, UndoState
	RecStepFailed     RecType = "step_failed"     // Step, Attempt, Error, UndoState
	RecStepSkipped    RecType = "step_skipped"    // Step, Message: why
	RecStepCancelled  RecType = "step_cancelled"  // Step, Attempt (interrupted; in flight on resume)
	RecUndoStarted    RecType = "undo_started"    // Step
	RecUndoSucceeded  RecType = "undo_succeeded"  // Step
	RecUndoFailed     RecType = "undo_failed"     // Step, Error
	RecUndoCheckpoint RecType = "undo_checkpoint" // Step, Attempt, Checkpoint: sent by a running undo
	// RecUndoWaived: the operator chose not to undo the step (`rollback
	// -skip STEP`); later rollbacks leave it and go on with what it depends
	// on. Step, Message: who and why.
	RecUndoWaived RecType = "undo_waived"
)

// Run states.
const (
	RunRunning        = "running"
	RunSucceeded      = "succeeded"
	RunFailed         = "failed"      // failed without rollback (on_failure = continue)
	RunAborted        = "aborted"     // on_failure = abort: stopped, resumable
	RunInterrupted    = "interrupted" // Ctrl-C or a crash: resumable
	RunRollingBack    = "rolling_back"
	RunRolledBack     = "rolled_back"
	RunRollbackFailed = "rollback_failed"
	// RunCorrupt is a run whose journal is damaged before its last record
	// (State.Corrupt says where). It is unfinished, so it keeps its lock,
	// but it can be neither resumed nor rolled back: nothing can tell what
	// the lost records said.
	RunCorrupt = "corrupt"
)

// Finished reports whether a run in this state needs no resume: it can only
// be rolled back (again).
func Finished(state string) bool {
	switch state {
	case RunSucceeded, RunRolledBack, RunFailed:
		return true
	}
	return false
}

// Record is one line of the journal.
type Record struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"t"`
	Type RecType   `json:"type"`

	Meta    *Meta  `json:"meta,omitempty"`
	State   string `json:"state,omitempty"`
	Step    string `json:"step,omitempty"` // step address
	Attempt int    `json:"attempt,omitempty"`
	Message string `json:"message,omitempty"`

	Inputs     *Value     `json:"inputs,omitempty"`
	Outputs    *Value     `json:"outputs,omitempty"`
	Checkpoint *Blob      `json:"checkpoint,omitempty"`
	UndoState  *Blob      `json:"undo_state,omitempty"`
	Error      *ErrorInfo `json:"error,omitempty"`
}

// ErrorInfo is a step error, already masked.
type ErrorInfo struct {
	Message   string `json:"message"`
	Kind      string `json:"kind,omitempty"`
	Hint      string `json:"hint,omitempty"`
	Retryable bool   `json:"retryable,omitempty"`
}

// Meta describes a run: what ran, where, by whom.
type Meta struct {
	ID          string            `json:"id"`
	Runbook     string            `json:"runbook,omitempty"` // runbook block name
	Dir         string            `json:"dir,omitempty"`     // absolute directory of the runbook
	Files       []FileHash        `json:"files,omitempty"`
	Git         *GitInfo          `json:"git,omitempty"`
	Plugins     []PluginInfo      `json:"plugins,omitempty"`
	User        string            `json:"user,omitempty"`
	Host        string            `json:"host,omitempty"`
	PID         int               `json:"pid,omitempty"`
	Started     time.Time         `json:"started"`
	Lock        string            `json:"lock,omitempty"`
	Parallelism int               `json:"parallelism,omitempty"`
	Vars        map[string]*Value `json:"vars,omitempty"`
	// Key is the fingerprint of the state key the run's secrets are
	// sealed with ("" when none was: nothing sensitive is stored).
	Key string `json:"key,omitempty"`
	// Command is the command line that started the run (masked).
	Command string `json:"command,omitempty"`
}

// FileHash is one runbook file and its SHA-256.
type FileHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// GitInfo is the commit the runbook was run from.
type GitInfo struct {
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
}

// PluginInfo is a plugin used by the run.
type PluginInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

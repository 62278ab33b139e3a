package sdk

import (
	"context"

	"github.com/zclconf/go-cty/cty"
)

// Action is the one interface every action implements.
type Action interface {
	Schema() ActionSchema
	// Apply performs the action. On failure it may still return a Result
	// whose UndoState describes what was partly done: the engine journals it
	// and hands it to Undo during rollback.
	Apply(ctx context.Context, req *ApplyRequest, ev Events) (*Result, error)
}

// Planner is implemented by actions that can say what Apply would change.
// Plan must not write anything.
type Planner interface {
	Plan(ctx context.Context, req *PlanRequest) (*PlanResult, error)
}

// Undoer is implemented by actions with a native undo.
type Undoer interface {
	Undo(ctx context.Context, req *UndoRequest, ev Events) error
}

// Validator is implemented by actions that check their inputs beyond types.
// Inputs may contain unknown values; check only what is known.
type Validator interface {
	Validate(ctx context.Context, inputs cty.Value) Diagnostics
}

// ApplyRequest carries everything Apply needs.
type ApplyRequest struct {
	// Inputs is an object of the action's InputType (sensitive marks removed;
	// see Sensitive for which paths were sensitive).
	Inputs cty.Value
	// IdempotencyKey is "<run id>/<step address>/<attempt>"; the same key is
	// used again when an interrupted step is resumed.
	IdempotencyKey string
	// Checkpoint is the last checkpoint this step emitted before the run was
	// interrupted, or nil on a first attempt.
	Checkpoint []byte
	// Sensitive lists input attribute paths that hold secrets.
	Sensitive []cty.Path
}

// Result is the final outcome of Apply.
type Result struct {
	// Outputs is an object of the action's OutputType (cty.NilVal = empty).
	Outputs cty.Value
	// UndoState is opaque to the engine; it is journaled and handed to Undo.
	UndoState []byte
	// SensitiveUndoState marks UndoState as holding a secret (e.g. a key
	// the step removed): the engine seals it in the journal with the state
	// key, or, without a key, does not store it at all (a later rollback
	// from another process then finds no undo state). An in-process
	// rollback of the same run still gets it.
	SensitiveUndoState bool
}

// UndoRequest carries what native undo needs.
type UndoRequest struct {
	Inputs         cty.Value
	Outputs        cty.Value // cty.NilVal or null when Apply failed
	UndoState      []byte
	IdempotencyKey string
	Checkpoint     []byte
	// Force is set when the operator asked to undo even if what the step
	// left has changed since (runbook rollback -force). Without it, an
	// undo that finds drift fails with KindConflict naming what changed.
	Force bool
}

// PlanRequest is the input of Plan. Inputs may hold unknown values.
type PlanRequest struct {
	Inputs cty.Value
}

// PlanResult says, in words and counts, what Apply would do.
type PlanResult struct {
	Summary  string
	Counts   map[string]int64 // e.g. {"add": 3, "delete": 1}
	Warnings []string
	Details  []string // one line per planned change, may be truncated
}

// Level is a log level.
type Level int

const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarn
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "debug"
	case LevelWarn:
		return "warn"
	case LevelError:
		return "error"
	default:
		return "info"
	}
}

// Events is how Apply and Undo report while they run. Implementations are
// safe for concurrent use.
type Events interface {
	Log(level Level, msg string)
	Progress(current, total int64, unit string)
	// Checkpoint records opaque resume data. It returns once the engine has
	// the checkpoint durably (journaled), so the plugin may then act on it
	// (e.g. write its own checkpoint to the backend).
	Checkpoint(data []byte) error
}

// SensitiveCheckpointer is implemented by Events that can journal a
// checkpoint holding a secret (sealed, or not stored without a state key).
// Call it through CheckpointSensitive.
type SensitiveCheckpointer interface {
	CheckpointSensitive(data []byte) error
}

// CheckpointSensitive records a checkpoint that holds a secret: sealed in
// the journal like every sensitive value. Events that cannot mark a
// checkpoint (NopEvents, test recorders) get a plain Checkpoint.
func CheckpointSensitive(ev Events, data []byte) error {
	if s, ok := ev.(SensitiveCheckpointer); ok {
		return s.CheckpointSensitive(data)
	}
	return ev.Checkpoint(data)
}

// NopEvents discards everything.
type NopEvents struct{}

func (NopEvents) Log(Level, string)             {}
func (NopEvents) Progress(int64, int64, string) {}
func (NopEvents) Checkpoint([]byte) error       { return nil }

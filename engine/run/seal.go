package run

import "github.com/runbookdev/runbook/engine/journal"

// Fields of a step instance whose secrets are sealed: each sealed value is
// bound to the run (Options.Sealer), the instance and the field, so that
// it cannot be moved to another run, step or field.
const (
	fieldInputs     = "inputs"
	fieldOutputs    = "outputs"
	fieldUndoState  = "undo_state"
	fieldCheckpoint = "checkpoint"
)

// sealer is the run's key bound to one field of one instance (nil: no key).
func (e *executor) sealer(addr, field string) *journal.Sealer {
	return e.opts.Sealer.Bind(addr, field)
}

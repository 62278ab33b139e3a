package run

import (
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/mask"
)

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

// holdsSecret says whether an unmarked primitive a plugin returned holds
// a known secret, and so is sensitive: a string that contains one, or a
// number that is one (in the decimal form the masker knows numbers by).
// A number is never a part of a secret: 4242 holds no secret "42".
func (e *executor) holdsSecret(x cty.Value) bool {
	if !x.IsKnown() || x.IsNull() {
		return false
	}
	switch x.Type() {
	case cty.String:
		return e.mask.Contains(x.AsString())
	case cty.Number:
		// (The masker turns a whole secret into one placeholder.)
		return e.mask.Mask(x.AsBigFloat().Text('f', -1)) == mask.Placeholder
	}
	return false
}

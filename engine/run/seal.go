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

// blob journals an undo state or a checkpoint: sealed (or redacted
// without a key) when it holds a known secret. With a key it is also
// sealed when the step's inputs hold a secret (secret), since a plugin may
// keep what a secret replaced, which no mask knows (core.file keeps the
// previous content of a file it overwrites). Without a key such a state
// stays readable so that a later rollback can still undo the step.
func (e *executor) blob(addr, field string, b []byte, secret bool) *journal.Blob {
	return e.blobMarked(addr, field, b, secret, false)
}

// blobMarked is blob for data the plugin may have marked sensitive
// (sdk.Result.SensitiveUndoState, sdk.CheckpointSensitive): marked data is
// treated as a sensitive input is, sealed with a key and not stored
// without one.
func (e *executor) blobMarked(addr, field string, b []byte, secret, marked bool) *journal.Blob {
	if b == nil {
		return nil
	}
	s := e.sealer(addr, field)
	seal := marked || e.mask.Contains(string(b)) || secret && s != nil
	return journal.NewBlob(b, seal, s)
}

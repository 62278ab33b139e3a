package run

import (
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbookdev/runbook/engine/lang"
)

// restoreInputs gives an instance back the secrets its journaled inputs
// lack: the sensitive parts the run could not store (no state key, or not
// this one) are null in journaled. The step's inputs, evaluated again
// with the variables given to this rollback or resume (-var, -var-file,
// RUNBOOK_VAR_*, the prompt), fill those parts; the rest stays as
// journaled, since it is what the step ran with. A part that cannot be
// evaluated again stays null.
func (e *executor) restoreInputs(st *lang.Step, key lang.Instance, journaled cty.Value) cty.Value {
	if journaled == cty.NilVal {
		return journaled
	}
	again, err := e.rb.Eval.Inputs(st, key, e.steps)
	if err != nil {
		return journaled
	}
	e.mask.AddValue(again, lang.MarkSensitive)
	again, _ = again.UnmarkDeep()
	plain, pvm := journaled.UnmarkDeepWithPaths()
	lost := func(p cty.Path) bool { // a sensitive part?
		for _, pm := range pvm {
			if _, ok := pm.Marks[lang.MarkSensitive]; ok && pm.Path.Equals(p) {
				return true
			}
		}
		return false
	}
	out, err := cty.Transform(plain, func(p cty.Path, x cty.Value) (cty.Value, error) {
		if !x.IsNull() || !lost(p) {
			return x, nil
		}
		y, err := p.Apply(again)
		if err != nil || y.IsNull() {
			return x, nil
		}
		if y, err = convert.Convert(y, x.Type()); err != nil {
			return x, nil
		}
		return y, nil
	})
	if err != nil {
		return journaled
	}
	return out.MarkWithPaths(pvm)
}

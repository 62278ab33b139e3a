package run

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/lang"
)

// ScopeEval evaluates through a lang.Scope (the real runbook).
type ScopeEval struct{ Scope *lang.Scope }

var _ Evaluator = ScopeEval{}

func diagErr(d hcl.Diagnostics) error {
	if d.HasErrors() {
		return d
	}
	return nil
}

// Expand implements Evaluator.
func (s ScopeEval) Expand(st *lang.Step, steps map[string]cty.Value) ([]lang.Instance, bool, error) {
	s.Scope.Steps = steps
	i, k, d := s.Scope.Expand(st)
	return i, k, diagErr(d)
}

// When implements Evaluator.
func (s ScopeEval) When(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (bool, error) {
	s.Scope.Steps = steps
	run, known, d := s.Scope.When(st, in)
	if err := diagErr(d); err != nil {
		return false, err
	}
	if !known {
		return false, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "The condition of step " + st.Name + " is not known"}}
	}
	return run, nil
}

// Inputs implements Evaluator.
func (s ScopeEval) Inputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (cty.Value, error) {
	s.Scope.Steps = steps
	v, d := s.Scope.Inputs(st, in)
	return v, diagErr(d)
}

// RollbackInputs implements Evaluator.
func (s ScopeEval) RollbackInputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value, inputs, outputs cty.Value) (cty.Value, error) {
	s.Scope.Steps = steps
	v, d := s.Scope.RollbackInputs(st, in, inputs, outputs)
	return v, diagErr(d)
}

// Outputs implements Evaluator.
func (s ScopeEval) Outputs(steps map[string]cty.Value) (map[string]cty.Value, error) {
	s.Scope.Steps = steps
	v, d := s.Scope.Outputs()
	return v, diagErr(d)
}

// FromConfig builds the Runbook of a loaded config.
func FromConfig(sc *lang.Scope) *Runbook {
	rb := &Runbook{Eval: ScopeEval{Scope: sc}}
	for _, name := range sc.Config.StepOrder {
		rb.Steps = append(rb.Steps, sc.Config.Steps[name])
	}
	return rb
}

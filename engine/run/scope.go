package run

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/lang"
)

// ScopeEval evaluates through a lang.Scope (the real runbook).
//
// Each evaluation sees only the steps the evaluated step can reference:
// its dependencies (Step.Deps covers every reference, also through locals
// and rollback blocks) and the steps any local references. That keeps the
// cost of one evaluation independent of the runbook's size, so that a run
// of N steps costs O(N), not O(N²).
type ScopeEval struct {
	Scope *lang.Scope

	full       *lang.Config
	localSteps []string                // steps referenced by locals
	views      map[string]*lang.Config // step name -> config restricted to what it sees
}

var _ Evaluator = (*ScopeEval)(nil)

// NewScopeEval returns the evaluator of sc.
func NewScopeEval(sc *lang.Scope) *ScopeEval {
	e := &ScopeEval{Scope: sc, full: sc.Config, views: map[string]*lang.Config{}}
	seen := map[string]bool{}
	for _, l := range sc.Config.Locals {
		for _, t := range l.Expr.Variables() {
			if t.RootName() != "step" || len(t) < 2 {
				continue
			}
			if a, ok := t[1].(hcl.TraverseAttr); ok && !seen[a.Name] {
				seen[a.Name] = true
				e.localSteps = append(e.localSteps, a.Name)
			}
		}
	}
	return e
}

// use points the scope at the view of st and the steps it sees. Expand,
// When and Inputs call it only when st has the expression they evaluate:
// without one, lang.Scope answers from the step and the schema alone.
func (s *ScopeEval) use(st *lang.Step, steps map[string]cty.Value) {
	view, ok := s.views[st.Name]
	if !ok {
		c := *s.full
		c.Steps = map[string]*lang.Step{st.Name: st}
		for _, names := range [][]string{st.Deps, s.localSteps} {
			for _, d := range names {
				if x, ok := s.full.Steps[d]; ok {
					c.Steps[d] = x
				}
			}
		}
		view = &c
		s.views[st.Name] = view
	}
	// The scope only reads Steps: a step that sees no finished step (a
	// root, or not started yet) gets a nil map rather than a new empty one.
	var m map[string]cty.Value
	for name := range view.Steps {
		if v, ok := steps[name]; ok {
			if m == nil {
				m = make(map[string]cty.Value, len(view.Steps))
			}
			m[name] = v
		}
	}
	s.Scope.Config = view
	s.Scope.Steps = m
}

func diagErr(d hcl.Diagnostics) error {
	if d.HasErrors() {
		return d
	}
	return nil
}

// Expand implements Evaluator.
func (s *ScopeEval) Expand(st *lang.Step, steps map[string]cty.Value) ([]lang.Instance, bool, error) {
	if st.ForEach != nil {
		s.use(st, steps)
	}
	i, k, d := s.Scope.Expand(st)
	return i, k, diagErr(d)
}

// When implements Evaluator.
func (s *ScopeEval) When(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (bool, error) {
	if st.When != nil {
		s.use(st, steps)
	}
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
func (s *ScopeEval) Inputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (cty.Value, error) {
	if st.With != nil {
		s.use(st, steps)
	}
	v, d := s.Scope.Inputs(st, in)
	return v, diagErr(d)
}

// RollbackInputs implements Evaluator.
func (s *ScopeEval) RollbackInputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value, inputs, outputs cty.Value) (cty.Value, error) {
	s.use(st, steps)
	v, d := s.Scope.RollbackInputs(st, in, inputs, outputs)
	return v, diagErr(d)
}

// Outputs implements Evaluator.
func (s *ScopeEval) Outputs(steps map[string]cty.Value) (map[string]cty.Value, error) {
	s.Scope.Config = s.full
	s.Scope.Steps = steps
	v, d := s.Scope.Outputs()
	return v, diagErr(d)
}

// FromConfig builds the Runbook of a loaded config.
func FromConfig(sc *lang.Scope) *Runbook {
	rb := &Runbook{Steps: make([]*lang.Step, 0, len(sc.Config.StepOrder)), Eval: NewScopeEval(sc),
		NoOutputs: len(sc.Config.Outputs) == 0}
	for _, name := range sc.Config.StepOrder {
		rb.Steps = append(rb.Steps, sc.Config.Steps[name])
	}
	return rb
}

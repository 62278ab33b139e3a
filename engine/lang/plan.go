package lang

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// Reversibility says what happens to a step's effects on rollback.
type Reversibility string

const (
	ReadOnly     Reversibility = "read-only"    // changes nothing
	Reversible   Reversibility = "reversible"   // rollback block or native undo
	Irreversible Reversibility = "irreversible" // neither: the point of no return
)

// PlanOptions configures Config.Plan.
type PlanOptions struct {
	Vars    map[string]cty.Value
	Schemas SchemaSource // nil: no schema-based information
	// Provider, when set, gives a plugin's Provider so that actions
	// supporting it are asked for their own Plan.
	Provider func(ctx context.Context, plugin string) (sdk.Provider, error)
}

// Plan is what a run would do, computed without running anything.
type Plan struct {
	Name, Description string
	Lock              string // "" when none or not known
	Levels            [][]string
	Steps             []*PlannedStep // in execution order (level by level, by name)
	// PointOfNoReturn is the first irreversible step in execution order, or "".
	PointOfNoReturn string
	Outputs         map[string]cty.Value
}

// PlannedStep is one step of a plan.
type PlannedStep struct {
	Name, Plugin, Action string
	Level                int
	Deps                 []string
	Reversibility        Reversibility
	Undo                 string // "native undo", "rollback: core.exec", ""
	Retry                *Retry
	Timeout              time.Duration
	OnFailure            string
	Always               bool
	// InstancesKnown is false when for_each is not known before apply; then
	// Instances holds one placeholder instance.
	InstancesKnown bool
	ForEach        bool
	Instances      []*PlannedInstance
}

// PlannedInstance is one instance of a planned step.
type PlannedInstance struct {
	Address string
	Inputs  cty.Value // may hold unknowns; sensitive parts marked
	// Run: "yes", "no" (when is false) or "unknown" (decided at apply).
	Run        string
	PluginPlan *sdk.PlanResult
	PlanError  string
}

// Plan computes the execution order, each step's inputs as far as known,
// reversibility and the point of no return, and asks plugins that support
// it for their own plan. The runbook must have loaded without errors.
func (c *Config) Plan(ctx context.Context, opts PlanOptions) (*Plan, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	p := &Plan{}
	if c.Runbook != nil {
		p.Name, p.Description = c.Runbook.Name, c.Runbook.Description
	}
	levels, err := c.Graph().Levels()
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot plan", Detail: err.Error()}}
	}
	p.Levels = levels

	schemas := map[string]sdk.ActionSchema{}
	steps := map[string]cty.Value{}
	for _, name := range c.StepOrder {
		s := c.Steps[name]
		steps[name] = cty.DynamicVal
		if opts.Schemas == nil {
			continue
		}
		sc, ok, err := opts.Schemas.ActionSchema(s.Plugin, s.Action)
		if err != nil || !ok {
			continue
		}
		schemas[name] = sc
		v := UnknownStep(sc)
		if s.ForEach != nil {
			v = cty.UnknownVal(cty.Map(v.Type()))
		}
		steps[name] = v
	}
	scope := &Scope{Config: c, Vars: opts.Vars, Steps: steps, Schemas: opts.Schemas}
	lock, d := scope.lockKey(true)
	diags = append(diags, d...)
	p.Lock = lock

	var asks []planAsk // the plugins' own plans, asked for at the end
	for li, level := range levels {
		for _, name := range level {
			s := c.Steps[name]
			ps := &PlannedStep{
				Name: name, Plugin: s.Plugin, Action: s.Action, Level: li, Deps: s.Deps,
				Retry: s.Retry, Timeout: s.Timeout, OnFailure: s.OnFailure, Always: s.Always,
				ForEach: s.ForEach != nil,
			}
			sc, hasSchema := schemas[name]
			ps.Reversibility, ps.Undo = reversibility(s, sc, hasSchema)
			insts, known, d := scope.Expand(s)
			diags = append(diags, d...)
			ps.InstancesKnown = known
			if !known {
				insts = []Instance{{Key: cty.UnknownVal(cty.String), Value: cty.DynamicVal}}
			}
			instVals := map[string]cty.Value{}
			var outputs cty.Value // the unknown outputs of every instance
			if hasSchema {
				outputs = cty.UnknownVal(sc.OutputType())
			}
			allReadOnly := known && len(insts) > 0 // every instance sets read_only = true
			// One context for every instance: evaluating the locals it
			// uses once per instance made plan quadratic in their number.
			ectx, ctxDiags := scope.ctx(s.When, s.With)
			diags = append(diags, ctxDiags...)
			for _, in := range insts {
				pi := &PlannedInstance{Address: Address(name, in.Key), Run: "yes"}
				if !known {
					pi.Address = name + "[" + KnownAfterApply + "]"
				}
				run, runKnown, d := scope.whenIn(s, in, ectx, nil)
				diags = append(diags, d...)
				switch {
				case !runKnown:
					pi.Run = "unknown"
				case !run:
					pi.Run = "no"
				}
				inputs, d := scope.inputsIn(s, in, ectx, nil)
				diags = append(diags, d...)
				pi.Inputs = inputs
				allReadOnly = allReadOnly && !d.HasErrors() && DeclaresReadOnly(inputs)
				if hasSchema && known && !d.HasErrors() {
					// Later steps may use this step's inputs, known now.
					sv := StepValue(inputs, outputs)
					if in.Key == cty.NilVal {
						steps[name] = sv
					} else {
						instVals[in.Key.AsString()] = sv
					}
				}
				if hasSchema && sc.Capabilities.SupportsPlan && opts.Provider != nil && pi.Run != "no" && !d.HasErrors() {
					asks = append(asks, planAsk{pi: pi, step: s, inputs: inputs})
				}
				ps.Instances = append(ps.Instances, pi)
			}
			if ps.Reversibility == Irreversible && allReadOnly {
				ps.Reversibility = ReadOnly
			}
			if ps.Reversibility == Irreversible && p.PointOfNoReturn == "" {
				p.PointOfNoReturn = name
			}
			if s.ForEach != nil && known && len(instVals) == len(insts) {
				steps[name] = cty.ObjectVal(instVals)
			}
			p.Steps = append(p.Steps, ps)
		}
	}
	outs, d := scope.Outputs()
	diags = append(diags, d...)
	p.Outputs = outs
	askPlugins(ctx, opts.Provider, asks)
	return p, uniqueDiags(diags)
}

// planAsk is an instance whose plugin is asked for its own plan.
type planAsk struct {
	pi     *PlannedInstance
	step   *Step
	inputs cty.Value
}

// planWorkers is how many plugin plans are asked for at once: one call at a
// time spent most of a large for_each's plan waiting for the round trip
// to the plugin process.
const planWorkers = 8

// askPlugins fills in the plugin plan of every ask, several at once (a
// plugin's Plan only reads).
func askPlugins(ctx context.Context, provider func(context.Context, string) (sdk.Provider, error), asks []planAsk) {
	next := make(chan *planAsk)
	var wg sync.WaitGroup
	for w := 0; w < min(planWorkers, len(asks)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range next {
				a.pi.PluginPlan, a.pi.PlanError = pluginPlan(ctx, provider, a.step, a.inputs)
			}
		}()
	}
	for i := range asks {
		next <- &asks[i]
	}
	close(next)
	wg.Wait()
}

// DeclaresReadOnly says whether a step's inputs mark it read-only: an
// action whose effect depends on its inputs (core.exec runs any command)
// may take a bool input `read_only`, and a step that sets it to true is
// planned and rolled back as changing nothing.
func DeclaresReadOnly(inputs cty.Value) bool {
	v, _ := inputs.UnmarkDeep()
	if v == cty.NilVal || !v.IsKnown() || v.IsNull() || !v.Type().IsObjectType() || !v.Type().HasAttribute("read_only") {
		return false
	}
	ro := v.GetAttr("read_only")
	return ro.Type() == cty.Bool && ro.IsKnown() && !ro.IsNull() && ro.True()
}

func reversibility(s *Step, sc sdk.ActionSchema, hasSchema bool) (Reversibility, string) {
	switch {
	case s.Rollback != nil && s.Rollback.Native:
		return Reversible, "native undo"
	case s.Rollback != nil:
		return Reversible, "rollback: " + s.Rollback.Plugin + "." + s.Rollback.Action
	case hasSchema && sc.Capabilities.ReadOnly:
		return ReadOnly, ""
	}
	return Irreversible, ""
}

func pluginPlan(ctx context.Context, provider func(context.Context, string) (sdk.Provider, error), s *Step, inputs cty.Value) (*sdk.PlanResult, string) {
	prov, err := provider(ctx, s.Plugin)
	if err != nil {
		return nil, err.Error()
	}
	mask := SecretMasker(inputs)
	uv, _ := inputs.UnmarkDeep()
	res, err := prov.Plan(ctx, s.Action, &sdk.PlanRequest{Inputs: uv})
	if err != nil {
		return nil, mask(fmt.Sprintf("%v", err))
	}
	if res == nil {
		return nil, ""
	}
	out := &sdk.PlanResult{Summary: mask(res.Summary), Counts: res.Counts}
	for _, w := range res.Warnings {
		out.Warnings = append(out.Warnings, mask(w))
	}
	for _, d := range res.Details {
		out.Details = append(out.Details, mask(d))
	}
	return out, ""
}

// SecretMasker returns a function that replaces every known sensitive
// string found in v with (sensitive).
func SecretMasker(v cty.Value) func(string) string {
	var secrets []string
	_, pvm := v.UnmarkDeepWithPaths()
	for _, pm := range pvm {
		if _, ok := pm.Marks[MarkSensitive]; !ok {
			continue
		}
		sv, err := pm.Path.Apply(unmarkDeep(v))
		if err != nil {
			continue
		}
		collectStrings(sv, &secrets)
	}
	return func(s string) string {
		for _, sec := range secrets {
			if sec != "" {
				s = strings.ReplaceAll(s, sec, SensitiveValue)
			}
		}
		return s
	}
}

func collectStrings(v cty.Value, out *[]string) {
	if !v.IsKnown() || v.IsNull() {
		return
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		*out = append(*out, v.AsString())
	case ty.IsCollectionType() || ty.IsObjectType() || ty.IsTupleType():
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			collectStrings(e, out)
		}
	default:
		*out = append(*out, FormatValue(v, 0))
	}
}

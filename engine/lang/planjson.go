package lang

import (
	"encoding/json"
	"io"
	"math/big"
	"sort"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// JSONPlan is the machine-readable plan (`runbook plan -json`). Values are
// plain JSON, except that unknown parts are the string "(known after
// apply)" and sensitive parts the string "(sensitive)".
type JSONPlan struct {
	FormatVersion   string            `json:"format_version"`
	Name            string            `json:"name,omitempty"`
	Description     string            `json:"description,omitempty"`
	Lock            string            `json:"lock,omitempty"`
	Levels          [][]string        `json:"levels"`
	Steps           []JSONPlannedStep `json:"steps"`
	PointOfNoReturn string            `json:"point_of_no_return,omitempty"`
	Outputs         map[string]any    `json:"outputs,omitempty"`
}

// JSONPlannedStep is one step of a JSONPlan.
type JSONPlannedStep struct {
	Name           string            `json:"name"`
	Action         string            `json:"action"`
	Level          int               `json:"level"`
	DependsOn      []string          `json:"depends_on"`
	Reversibility  Reversibility     `json:"reversibility"`
	Undo           string            `json:"undo,omitempty"`
	OnFailure      string            `json:"on_failure"`
	Always         bool              `json:"always,omitempty"`
	TimeoutSeconds float64           `json:"timeout_seconds,omitempty"`
	RetryAttempts  int               `json:"retry_attempts,omitempty"`
	ForEach        bool              `json:"for_each,omitempty"`
	InstancesKnown bool              `json:"instances_known"`
	Instances      []JSONPlannedInst `json:"instances"`
}

// JSONPlannedInst is one instance of a JSONPlannedStep.
type JSONPlannedInst struct {
	Address    string          `json:"address"`
	Run        string          `json:"run"` // "yes", "no" (when is false), "unknown"
	Inputs     any             `json:"inputs"`
	PluginPlan *JSONPluginPlan `json:"plugin_plan,omitempty"`
	PlanError  string          `json:"plan_error,omitempty"`
}

// JSONPluginPlan is a plugin's own plan of one instance.
type JSONPluginPlan struct {
	Summary  string           `json:"summary"`
	Counts   map[string]int64 `json:"counts,omitempty"`
	Warnings []string         `json:"warnings,omitempty"`
	Details  []string         `json:"details,omitempty"`
}

func pluginPlanJSON(p *sdk.PlanResult) *JSONPluginPlan {
	if p == nil {
		return nil
	}
	return &JSONPluginPlan{Summary: p.Summary, Counts: p.Counts, Warnings: p.Warnings, Details: p.Details}
}

// JSON converts the plan for JSON output.
func (p *Plan) JSON() *JSONPlan {
	jp := &JSONPlan{FormatVersion: "1.0", Name: p.Name, Description: p.Description, Lock: p.Lock,
		Levels: p.Levels, PointOfNoReturn: p.PointOfNoReturn, Steps: []JSONPlannedStep{}}
	if jp.Levels == nil {
		jp.Levels = [][]string{}
	}
	for _, s := range p.Steps {
		js := JSONPlannedStep{
			Name: s.Name, Action: s.Plugin + "." + s.Action, Level: s.Level, DependsOn: append([]string{}, s.Deps...),
			Reversibility: s.Reversibility, Undo: s.Undo, OnFailure: s.OnFailure, Always: s.Always,
			TimeoutSeconds: s.Timeout.Seconds(), ForEach: s.ForEach, InstancesKnown: s.InstancesKnown,
			Instances: []JSONPlannedInst{},
		}
		if s.Retry != nil {
			js.RetryAttempts = s.Retry.Attempts
		}
		for _, in := range s.Instances {
			js.Instances = append(js.Instances, JSONPlannedInst{
				Address: in.Address, Run: in.Run, Inputs: ValueJSON(WithoutNulls(in.Inputs)),
				PluginPlan: pluginPlanJSON(in.PluginPlan), PlanError: in.PlanError,
			})
		}
		jp.Steps = append(jp.Steps, js)
	}
	if len(p.Outputs) > 0 {
		jp.Outputs = map[string]any{}
		for k, v := range p.Outputs {
			jp.Outputs[k] = ValueJSON(v)
		}
	}
	return jp
}

// WriteJSON writes the plan as one indented JSON document.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p.JSON())
}

// ValueJSON converts a value to plain Go data for encoding/json, with
// placeholders for unknown and sensitive parts.
func ValueJSON(v cty.Value) any {
	if v == cty.NilVal {
		return nil
	}
	if v.HasMark(MarkSensitive) {
		return SensitiveValue
	}
	v, _ = v.Unmark()
	if !v.IsKnown() {
		return KnownAfterApply
	}
	if v.IsNull() {
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString()
	case ty == cty.Bool:
		return v.True()
	case ty == cty.Number:
		f := v.AsBigFloat()
		if f.IsInt() {
			if i, acc := f.Int64(); acc == big.Exact {
				return i
			}
		}
		return json.Number(formatNumber(f))
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			out = append(out, ValueJSON(e))
		}
		return out
	case ty.IsMapType() || ty.IsObjectType():
		out := map[string]any{}
		m := v.AsValueMap()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out[k] = ValueJSON(m[k])
		}
		return out
	}
	return ty.FriendlyName()
}

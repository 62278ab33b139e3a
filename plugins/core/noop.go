package core

import (
	"context"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// noopAction returns its input values as outputs. With `fail` set it fails
// instead, which tests and examples use to trigger a rollback.
type noopAction struct{}

// noopAction is no sdk.Planner: its plan would only repeat its inputs,
// which plan shows, and a run of a thousand noop steps would pay a
// thousand plan calls for nothing.
var _ sdk.Undoer = (*noopAction)(nil)

func (*noopAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "noop",
		Description: "Does nothing and returns its input `values` as the output `values`. Set `fail` to make it fail with that message (to exercise rollback).",
		Inputs: []sdk.Attribute{
			{Name: "values", Type: cty.DynamicPseudoType, Description: "Any value; returned unchanged as the output `values`."},
			{Name: "fail", Type: cty.String, Description: "When set, the step fails with this message."},
		},
		Outputs: []sdk.Attribute{
			{Name: "values", Type: cty.DynamicPseudoType, Description: "The input `values`."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (a *noopAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	if f := req.Inputs.GetAttr("fail"); !f.IsNull() && f.AsString() != "" {
		return nil, sdk.Errorf(sdk.KindConflict, false, "", "%s", f.AsString())
	}
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"values": sensitiveAt(req.Inputs.GetAttr("values"), req.Sensitive, "values")})}, nil
}

// sensitiveAt returns v, the input attr, with the parts that were sensitive
// in the inputs (paths) marked sensitive again: an output echoing an input
// is as secret as the input, whatever its text (a two-digit number is no
// text the engine's masker can recognise).
func sensitiveAt(v cty.Value, paths []cty.Path, attr string) cty.Value {
	var pvm []cty.PathValueMarks
	for _, p := range paths {
		if len(p) == 0 {
			continue
		}
		if st, ok := p[0].(cty.GetAttrStep); ok && st.Name == attr {
			pvm = append(pvm, cty.PathValueMarks{Path: p[1:], Marks: cty.NewValueMarks(markSensitive)})
		}
	}
	if len(pvm) == 0 {
		return v
	}
	return v.MarkWithPaths(pvm)
}

func (*noopAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return ctx.Err()
}

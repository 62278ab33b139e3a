package core

import (
	"context"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// noopAction returns its input values as outputs. With `fail` set it fails
// instead, which tests and examples use to trigger a rollback.
type noopAction struct{}

var (
	_ sdk.Undoer  = (*noopAction)(nil)
	_ sdk.Planner = (*noopAction)(nil)
)

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
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"values": req.Inputs.GetAttr("values")})}, nil
}

var _ sdk.Undoer = (*noopAction)(nil)

func (*noopAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return ctx.Err()
}

var _ sdk.Planner = (*noopAction)(nil)

func (*noopAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if f := req.Inputs.GetAttr("fail"); f.IsKnown() && !f.IsNull() && f.AsString() != "" {
		return &sdk.PlanResult{Summary: "will fail", Warnings: []string{"fail is set: this step will fail"}}, nil
	}
	return &sdk.PlanResult{Summary: "nothing to do"}, nil
}

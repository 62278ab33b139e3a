package core

import (
	"context"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// sleepAction waits for a duration, reporting progress each second.
type sleepAction struct{}

func (*sleepAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "sleep",
		Description: "Waits for `duration` (e.g. \"30s\"), e.g. to let caches expire or DNS propagate.",
		Inputs: []sdk.Attribute{
			{Name: "duration", Type: cty.String, Required: true, Description: "How long to wait, as a Go duration (\"1m30s\")."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (*sleepAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	d, err := parseDuration("duration", req.Inputs.GetAttr("duration").AsString(), 0)
	if err != nil {
		return nil, err
	}
	total := int64(d / time.Second)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
		case <-deadline.C:
			ev.Progress(total, total, "s")
			return nil, nil
		case <-tick.C:
			ev.Progress(int64(time.Since(start)/time.Second), total, "s")
		}
	}
}

// assertAction fails when its condition is false.
type assertAction struct{}

func (*assertAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "assert",
		Description: "Fails the step with `message` when `condition` is false.",
		Inputs: []sdk.Attribute{
			{Name: "condition", Type: cty.Bool, Required: true, Description: "Must be true for the step to succeed."},
			{Name: "message", Type: cty.String, Description: "Error message when the condition is false."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (*assertAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	if req.Inputs.GetAttr("condition").True() {
		return nil, nil
	}
	msg := "assertion failed"
	if m := req.Inputs.GetAttr("message"); !m.IsNull() && m.AsString() != "" {
		msg = m.AsString()
	}
	return nil, sdk.Errorf(sdk.KindAssertion, false, "", "%s", msg)
}

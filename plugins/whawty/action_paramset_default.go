package whawty

import (
	"context"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// paramSetDefaultAction is whawty.param_set_default.
type paramSetDefaultAction struct{}

var (
	_ sdk.Action    = (*paramSetDefaultAction)(nil)
	_ sdk.Planner   = (*paramSetDefaultAction)(nil)
	_ sdk.Undoer    = (*paramSetDefaultAction)(nil)
	_ sdk.Validator = (*paramSetDefaultAction)(nil)
)

type paramSetDefaultInputs struct {
	Config      string   `cty:"config"`
	ID          int64    `cty:"id"`
	PeerConfigs []string `cty:"peer_configs"`
}

type paramSetDefaultOutputs struct {
	Previous int64 `cty:"previous"`
	Changed  bool  `cty:"changed"`
}

func (*paramSetDefaultAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "param_set_default",
		Description: "Make a parameter-set the default of a store config; refuses when the set is not in the config. " +
			"Native undo switches back (restores the file byte for byte, keeping any set the step's file had that a hash in the store or a peer_configs store uses).",
		Inputs: append([]sdk.Attribute{
			{Name: "config", Type: cty.String, Required: true, Description: "Config file location (path or ssh://user@host:port/path)."},
			{Name: "id", Type: cty.Number, Required: true, Description: "Parameter-set id to make the default."},
			peerConfigsInput,
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "previous", Type: cty.Number, Description: "The default before the change (0 = none)."},
			{Name: "changed", Type: cty.Bool, Description: "False when the set was already the default."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (*paramSetDefaultAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	d := peerConfigsDiag(locDiag(nil, inputs, "config", true), inputs)
	return idDiag(d, inputs)
}

// idDiag checks a known id input is > 0.
func idDiag(d sdk.Diagnostics, inputs cty.Value) sdk.Diagnostics {
	if !inputs.IsKnown() || inputs.IsNull() || !inputs.Type().IsObjectType() || !inputs.Type().HasAttribute("id") {
		return d
	}
	v := inputs.GetAttr("id")
	if v.IsKnown() && !v.IsNull() {
		if bf := v.AsBigFloat(); bf.Sign() <= 0 || !bf.IsInt() {
			d = d.Errorf([]string{"id"}, "id must be a whole number > 0")
		}
	}
	return d
}

var _ sdk.Planner = (*paramSetDefaultAction)(nil)

func (*paramSetDefaultAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "switch the default parameter-set (inputs known at apply time)", Counts: map[string]int64{"change": 1}}, nil
	}
	var in paramSetDefaultInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	cf, err := loadConfigArg(ctx, c, in.Config)
	if err != nil {
		return nil, err
	}
	if cf.Cfg.Sets[uint64(in.ID)] == nil {
		return nil, missingSet(cf, uint64(in.ID))
	}
	if cf.Cfg.Default == uint64(in.ID) {
		return &sdk.PlanResult{Summary: fmt.Sprintf("%s: parameter-set %d is already the default", cf.Loc, in.ID), Counts: map[string]int64{"change": 0}}, nil
	}
	return &sdk.PlanResult{
		Summary: fmt.Sprintf("%s: default parameter-set %d -> %d", cf.Loc, cf.Cfg.Default, in.ID),
		Counts:  map[string]int64{"change": 1},
	}, nil
}

func missingSet(cf *configFile, id uint64) error {
	return sdk.Errorf(sdk.KindConflict, false, "add the parameter-set first (whawty.param_set_add)",
		"config %s has no parameter-set %d (it has %s)", cf.Loc, id, cf.Cfg.idList())
}

func (a *paramSetDefaultAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in paramSetDefaultInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	if in.ID <= 0 {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the step's inputs", "id must be > 0")
	}
	c := newConns(opts)
	defer c.Close()
	cf, err := loadConfigArg(ctx, c, in.Config)
	if err != nil {
		return nil, err
	}
	prev := cf.Cfg.Default
	if cf.Cfg.Sets[uint64(in.ID)] == nil {
		return nil, missingSet(cf, uint64(in.ID))
	}
	if err := cf.Cfg.setDefault(uint64(in.ID)); err != nil {
		return nil, configInvalid(cf.Loc, err)
	}
	res, err := commitConfig(cf, ev, fmt.Sprintf("default parameter-set %d -> %d", prev, in.ID))
	if err != nil {
		return res, err
	}
	out := paramSetDefaultOutputs{Previous: int64(prev), Changed: prev != uint64(in.ID)}
	if res.Outputs, err = sdk.Encode(a.Schema(), out); err != nil {
		return res, err
	}
	return res, nil
}

var _ sdk.Undoer = (*paramSetDefaultAction)(nil)

func (*paramSetDefaultAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return undoConfigAction(ctx, req, ev)
}

// Package plugintest is a plugin made for testing the plugin protocol and
// host: it echoes every value type, streams events, checkpoints, waits to be
// cancelled and fails in classified ways. testplugin/ builds it as a binary.
package plugintest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// New returns the "testing" plugin.
//
// With HooksEnv set to a file name, its Configure and Close hooks append
// "configure" and "close" lines to that file.
func New() *sdk.Plugin {
	p := &sdk.Plugin{
		Name:    "testing",
		Version: "1.2.3",
		Actions: []sdk.Action{&echo{}, &events{}, &slow{}, &fail{}, &undoer{}},
	}
	if file := os.Getenv(HooksEnv); file != "" {
		p.Configure = func(context.Context) error { return appendLine(file, "configure") }
		p.Close = func() error { return appendLine(file, "close") }
	}
	return p
}

// HooksEnv names the file New's hooks write to.
const HooksEnv = "RUNBOOK_PLUGINTEST_HOOKS"

func appendLine(file, line string) error {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// EchoSchema has an input and an output of every kind of cty type.
var EchoSchema = sdk.ActionSchema{
	Name:           "echo",
	Description:    "Returns its inputs as outputs.",
	Inputs:         echoAttrs(true),
	Outputs:        echoAttrs(false),
	Capabilities:   sdk.Capabilities{ReadOnly: true, Idempotent: true},
	MaxConcurrency: 3,
}

func echoAttrs(in bool) []sdk.Attribute {
	return []sdk.Attribute{
		{Name: "s", Type: cty.String, Required: in, Description: "a string"},
		{Name: "n", Type: cty.Number},
		{Name: "b", Type: cty.Bool},
		{Name: "l", Type: cty.List(cty.String)},
		{Name: "set", Type: cty.Set(cty.Number)},
		{Name: "m", Type: cty.Map(cty.Number)},
		{Name: "o", Type: cty.Object(map[string]cty.Type{"a": cty.String, "b": cty.List(cty.Bool)})},
		{Name: "t", Type: cty.Tuple([]cty.Type{cty.String, cty.Number})},
		{Name: "any", Type: cty.DynamicPseudoType},
		{Name: "secret", Type: cty.String, Sensitive: true},
		{Name: "sensitive_paths", Type: cty.List(cty.String), Description: "outputs only: the sensitive input paths seen"},
	}
}

type echo struct{}

var (
	_ sdk.Planner   = (*echo)(nil)
	_ sdk.Validator = (*echo)(nil)
)

func (*echo) Schema() sdk.ActionSchema { return EchoSchema }

func (*echo) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	vals := req.Inputs.AsValueMap()
	var paths []cty.Value
	for _, p := range req.Sensitive {
		paths = append(paths, cty.StringVal(fmt.Sprintf("%#v", p)))
	}
	if len(paths) > 0 {
		vals["sensitive_paths"] = cty.ListVal(paths)
	} else {
		vals["sensitive_paths"] = cty.NullVal(cty.List(cty.String))
	}
	out := cty.ObjectVal(vals)
	// Mark the secret output so marks are seen crossing back.
	if s := out.GetAttr("secret"); !s.IsNull() {
		out = pluginwire.MarkPaths(out, []cty.Path{cty.GetAttrPath("secret")})
	}
	return &sdk.Result{Outputs: out}, nil
}

var _ sdk.Planner = (*echo)(nil)

// Plan reports which inputs are unknown. It also prints the input `s` on
// its stderr, as a careless plugin would: the host must mask it.
func (*echo) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if s := req.Inputs.GetAttr("s"); s.IsKnown() && !s.IsNull() {
		fmt.Fprintf(os.Stderr, "echo plan: s=%s\n", s.AsString())
	}
	var unknown []string
	for k, v := range req.Inputs.AsValueMap() {
		if !v.IsWhollyKnown() {
			unknown = append(unknown, k)
		}
	}
	return &sdk.PlanResult{Summary: "echo", Counts: map[string]int64{"unknown": int64(len(unknown))}, Details: unknown}, nil
}

func (*echo) Validate(ctx context.Context, in cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	if s := in.GetAttr("s"); s.IsKnown() && !s.IsNull() && s.AsString() == "bad" {
		d = d.Errorf([]string{"s"}, "s must not be %q", "bad")
	}
	if n := in.GetAttr("n"); n.IsKnown() && !n.IsNull() && n.LessThan(cty.Zero).True() {
		d = d.Warnf([]string{"n"}, "n is negative")
	}
	return d
}

// events streams logs, progress and checkpoints.
type events struct{}

func (*events) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "events",
		Inputs: []sdk.Attribute{
			{Name: "count", Type: cty.Number, Required: true},
		},
		Outputs: []sdk.Attribute{
			{Name: "resumed_from", Type: cty.String},
			{Name: "checkpoint_errors", Type: cty.Number},
		},
	}
}

func (*events) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in struct {
		Count int `cty:"count"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	errs := 0
	for i := 1; i <= in.Count; i++ {
		ev.Log(sdk.LevelInfo, "step "+strconv.Itoa(i))
		ev.Progress(int64(i), int64(in.Count), "items")
		if err := ev.Checkpoint([]byte("cp" + strconv.Itoa(i))); err != nil {
			errs++
		}
	}
	return &sdk.Result{
		Outputs: cty.ObjectVal(map[string]cty.Value{
			"resumed_from":      cty.StringVal(string(req.Checkpoint) + "|" + req.IdempotencyKey),
			"checkpoint_errors": cty.NumberIntVal(int64(errs)),
		}),
		UndoState: []byte("undo:" + strconv.Itoa(in.Count)),
	}, nil
}

// slow waits until cancelled (or its duration passes) and then returns a
// partial result with undo state.
type slow struct{}

func (*slow) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "slow",
		Inputs: []sdk.Attribute{
			{Name: "duration", Type: cty.String},
			{Name: "ignore_cancel", Type: cty.Bool, Description: "keep going when cancelled"},
		},
	}
}

func (*slow) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	d := time.Minute
	if v := req.Inputs.GetAttr("duration"); !v.IsNull() {
		d, _ = time.ParseDuration(v.AsString())
	}
	ev.Log(sdk.LevelInfo, "started")
	if v := req.Inputs.GetAttr("ignore_cancel"); !v.IsNull() && v.True() {
		time.Sleep(d)
		return &sdk.Result{UndoState: []byte("done")}, nil
	}
	select {
	case <-ctx.Done():
		return &sdk.Result{UndoState: []byte("partial")}, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
	case <-time.After(d):
		return &sdk.Result{UndoState: []byte("done")}, nil
	}
}

// fail returns a classified error with a partial result.
type fail struct{}

func (*fail) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "fail",
		Inputs: []sdk.Attribute{
			{Name: "kind", Type: cty.String},
			{Name: "retryable", Type: cty.Bool},
			{Name: "hint", Type: cty.String},
			{Name: "message", Type: cty.String},
		},
	}
}

func (*fail) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in struct {
		Kind      string `cty:"kind"`
		Retryable bool   `cty:"retryable"`
		Hint      string `cty:"hint"`
		Message   string `cty:"message"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if in.Kind == "plain" {
		return nil, fmt.Errorf("%s", in.Message)
	}
	return &sdk.Result{UndoState: []byte("half")}, sdk.Errorf(sdk.Kind(in.Kind), in.Retryable, in.Hint, "%s", in.Message)
}

// undoer has a native undo that reports what it received.
type undoer struct{}

var _ sdk.Undoer = (*undoer)(nil)

func (*undoer) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:    "undoer",
		Inputs:  []sdk.Attribute{{Name: "x", Type: cty.String}},
		Outputs: []sdk.Attribute{{Name: "y", Type: cty.String}},
	}
}

func (*undoer) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"y": req.Inputs.GetAttr("x")}), UndoState: []byte("state")}, nil
}

func (*undoer) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	y := "<null>"
	if req.Outputs != cty.NilVal && !req.Outputs.IsNull() {
		y = req.Outputs.GetAttr("y").AsString()
	}
	msg := fmt.Sprintf("undo x=%s y=%s state=%s key=%s", req.Inputs.GetAttr("x").AsString(), y, req.UndoState, req.IdempotencyKey)
	ev.Log(sdk.LevelInfo, msg)
	if err := ev.Checkpoint([]byte("undo-cp")); err != nil {
		return err
	}
	if req.Inputs.GetAttr("x").AsString() == "fail" {
		return sdk.Errorf(sdk.KindConflict, true, "try later", "undo failed")
	}
	return nil
}

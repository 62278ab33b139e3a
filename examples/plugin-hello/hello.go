package main

import (
	"context"
	"fmt"
	"os"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// greet says hello. It is the smallest useful action: a schema, inputs
// decoded into a struct, an event, outputs.
type greet struct{}

func (*greet) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "greet",
		Description: "Greets someone.",
		Inputs: []sdk.Attribute{
			{Name: "name", Type: cty.String, Required: true, Description: "Who to greet."},
			{Name: "greeting", Type: cty.String, Description: "Greeting word (default \"Hello\")."},
		},
		Outputs: []sdk.Attribute{
			{Name: "message", Type: cty.String, Description: "The greeting."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (a *greet) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in struct {
		Name     string `cty:"name"`
		Greeting string `cty:"greeting"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set name to a non-empty string", "name is empty")
	}
	if in.Greeting == "" {
		in.Greeting = "Hello"
	}
	msg := fmt.Sprintf("%s, %s!", in.Greeting, in.Name)
	ev.Log(sdk.LevelInfo, "greeting "+in.Name)
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"message": cty.StringVal(msg)})}, nil
}

// crash panics. By default it panics in a goroutine of its own, which kills
// the plugin process (as a real bug would); how = "panic" panics in Apply
// itself, which the SDK recovers; how = "exit" exits with status 3.
type crash struct{}

func (*crash) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "crash",
		Description: "Crashes the plugin, to show how the engine reports it.",
		Inputs: []sdk.Attribute{
			{Name: "message", Type: cty.String, Description: "Panic message (default \"hello crashed on purpose\")."},
			{Name: "how", Type: cty.String, Description: "\"goroutine\" (default), \"panic\" or \"exit\"."},
		},
	}
}

func (*crash) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in struct {
		Message string `cty:"message"`
		How     string `cty:"how"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if in.Message == "" {
		in.Message = "hello crashed on purpose"
	}
	switch in.How {
	case "panic":
		panic(in.Message)
	case "exit":
		fmt.Fprintln(os.Stderr, "exiting:", in.Message)
		os.Exit(3)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		panic(in.Message)
	}()
	<-done
	return nil, nil
}

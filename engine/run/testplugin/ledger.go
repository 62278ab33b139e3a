// Package testplugin is a plugin for the executor's end-to-end tests: its
// "apply" action applies an effect at most once per idempotency key, by
// keeping a ledger file, so that tests can prove that a crashed and
// resumed run never applies an effect twice. It is compiled into the
// runbook binary only with the build tag runbooktest.
package testplugin

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// New returns the "ledger" plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{Name: "ledger", Version: "0.0.1", Actions: []sdk.Action{&applyAction{}}}
}

type applyAction struct{}

func (*applyAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "apply",
		Description: "Append `id` to the ledger file once per idempotency key.",
		Inputs: []sdk.Attribute{
			{Name: "ledger", Type: cty.String, Required: true},
			{Name: "id", Type: cty.String, Required: true},
			{Name: "sleep_ms", Type: cty.Number},
		},
		Outputs:      []sdk.Attribute{{Name: "id", Type: cty.String}, {Name: "deduplicated", Type: cty.Bool}},
		Capabilities: sdk.Capabilities{Idempotent: true, NativeUndo: true},
	}
}

type in struct {
	Ledger  string `cty:"ledger"`
	ID      string `cty:"id"`
	SleepMS *int64 `cty:"sleep_ms"`
}

func sleep(ctx context.Context, ms *int64) error {
	if ms == nil || *ms <= 0 {
		return nil
	}
	select {
	case <-time.After(time.Duration(*ms) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// record appends "<key>\t<id>" unless key is already in the ledger.
func record(path, key, line string) (dup bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, _, _ := strings.Cut(sc.Text(), "\t"); k == key {
			return true, nil
		}
	}
	if _, err := f.WriteString(key + "\t" + line + "\n"); err != nil {
		return false, err
	}
	return false, f.Sync()
}

func (*applyAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var x in
	if err := sdk.Decode(req.Inputs, &x); err != nil {
		return nil, err
	}
	if err := sleep(ctx, x.SleepMS); err != nil {
		return nil, err
	}
	// Plugin stderr reaches the operator through the engine's masker.
	fmt.Fprintf(os.Stderr, "ledger: applying %s\n", x.ID)
	dup, err := record(x.Ledger, req.IdempotencyKey, x.ID)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := sleep(ctx, x.SleepMS); err != nil {
		return &sdk.Result{UndoState: []byte(x.ID)}, err
	}
	return &sdk.Result{
		Outputs:   cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(x.ID), "deduplicated": cty.BoolVal(dup)}),
		UndoState: []byte(x.ID),
	}, nil
}

func (*applyAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var x in
	if err := sdk.Decode(req.Inputs, &x); err != nil {
		return err
	}
	_, err := record(x.Ledger, req.IdempotencyKey, "undo "+x.ID)
	return err
}

// Package ledger is a plugin for the engine's end-to-end tests: its
// "apply" action applies an effect at most once per idempotency key, by
// keeping a ledger file, so that tests can prove that a crashed and
// resumed run never applies an effect twice, and that a rollback undoes
// what a crashed run left. It is served by the runbook-plugin-ledger
// command, which only tests build.
package ledger

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// New returns the "ledger" plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{Name: "ledger", Version: "0.0.2", Actions: []sdk.Action{&applyAction{}}}
}

type applyAction struct{}

func (*applyAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "apply",
		Description: "Append `id` to the ledger file once per idempotency key. It checkpoints the key " +
			"before acting, so that the undo of a step interrupted mid-way knows what to look for.",
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

// mu serializes the ledger's read-and-append: one plugin process serves
// every step of a run.
var mu sync.Mutex

// has reports whether key is in the ledger; record appends "<key>\t<line>"
// unless key is already there.
func has(path, key string) (bool, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, _, _ := strings.Cut(sc.Text(), "\t"); k == key {
			return true, nil
		}
	}
	return false, sc.Err()
}

func record(path, key, line string) (dup bool, err error) {
	mu.Lock()
	defer mu.Unlock()
	if dup, err := has(path, key); dup || err != nil {
		return dup, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, err
	}
	defer f.Close()
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
	// What the undo of an interrupted attempt looks for.
	if err := ev.Checkpoint([]byte(req.IdempotencyKey)); err != nil {
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
	undo := []byte(req.IdempotencyKey)
	if err := sleep(ctx, x.SleepMS); err != nil {
		return &sdk.Result{UndoState: undo}, err
	}
	return &sdk.Result{
		Outputs:   cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal(x.ID), "deduplicated": cty.BoolVal(dup)}),
		UndoState: undo,
	}, nil
}

// Undo appends "undo <id>" when the apply it undoes (named by the undo
// state, or by the checkpoint of an interrupted attempt) is in the ledger.
func (*applyAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	var x in
	if err := sdk.Decode(req.Inputs, &x); err != nil {
		return err
	}
	key := string(req.UndoState)
	if key == "" {
		key = string(req.Checkpoint)
	}
	if key == "" {
		return fmt.Errorf("ledger: nothing says what to undo")
	}
	mu.Lock()
	applied, err := has(x.Ledger, key)
	mu.Unlock()
	if err != nil || !applied {
		return err
	}
	_, err = record(x.Ledger, req.IdempotencyKey, "undo "+x.ID)
	return err
}

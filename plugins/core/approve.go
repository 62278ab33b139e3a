package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// approveAction is a manual gate: it waits for an approval file written by
// `runbook approve RUN STEP` (or by the terminal view on a TTY).
type approveAction struct {
	// poll is how often the approval file is checked (0 = pollInterval).
	poll time.Duration
}

const pollInterval = 250 * time.Millisecond

// Approval is the content of an approval file.
type Approval struct {
	ApprovedBy string `json:"approved_by"`
	At         string `json:"at"`
	Approved   bool   `json:"approved"`
}

func (*approveAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "approve",
		Description: "A manual gate: waits until an operator approves (or rejects) the step, on the terminal " +
			"or with `runbook approve RUN STEP [-reject]` from another shell. Records who approved and when.",
		Inputs: []sdk.Attribute{
			{Name: "prompt", Type: cty.String, Required: true, Description: "The question shown to the operator."},
			{Name: "timeout", Type: cty.String, Description: "Fail when nobody answered within this duration (default: wait forever)."},
		},
		Outputs: []sdk.Attribute{
			{Name: "approved_by", Type: cty.String, Description: "Who approved."},
			{Name: "at", Type: cty.String, Description: "When, RFC 3339."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

// ApprovalPath is where the approval of the step identified by an
// idempotency key ("<run id>/<step address>/<attempt>") is expected, under
// stateDir.
func ApprovalPath(stateDir, idempotencyKey string) (string, error) {
	first := strings.IndexByte(idempotencyKey, '/')
	last := strings.LastIndexByte(idempotencyKey, '/')
	if first <= 0 || last <= first+1 {
		return "", fmt.Errorf("idempotency key %q is not RUN/STEP/ATTEMPT", idempotencyKey)
	}
	run, step := idempotencyKey[:first], idempotencyKey[first+1:last]
	return filepath.Join(stateDir, "approvals", SanitizeAddress(run), SanitizeAddress(step)+".json"), nil
}

// SanitizeAddress replaces every char outside [A-Za-z0-9._-] with '_'.
func SanitizeAddress(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}

func (a *approveAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in struct {
		Prompt  string `cty:"prompt"`
		Timeout string `cty:"timeout"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	timeout, err := parseDuration("timeout", in.Timeout, 0)
	if err != nil {
		return nil, err
	}
	stateDir := os.Getenv("RUNBOOK_STATE_DIR")
	if stateDir == "" {
		stateDir = ".runbook"
	}
	path, err := ApprovalPath(stateDir, req.IdempotencyKey)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInternal, false, "", "%v", err)
	}
	run, rest, _ := strings.Cut(req.IdempotencyKey, "/")
	step := rest[:strings.LastIndexByte(rest, '/')]
	// The engine says what the command needs to find the state directory
	// from where it was printed.
	approve := fmt.Sprintf("runbook approve%s %s '%s'", os.Getenv("RUNBOOK_HINT_STATE_FLAG"), run, step)
	ev.Log(sdk.LevelWarn, fmt.Sprintf("waiting for approval: %s (approve with `%s`, reject with -reject)", in.Prompt, approve))
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	poll := a.poll
	if poll == 0 {
		poll = pollInterval
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ap, err := readApproval(path)
		if err != nil {
			return nil, err
		}
		if ap != nil {
			if !ap.Approved {
				return nil, sdk.Errorf(sdk.KindRejected, false, "", "rejected by %s at %s", ap.ApprovedBy, ap.At)
			}
			ev.Log(sdk.LevelInfo, fmt.Sprintf("approved by %s at %s", ap.ApprovedBy, ap.At))
			return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
				"approved_by": cty.StringVal(ap.ApprovedBy),
				"at":          cty.StringVal(ap.At),
			})}, nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, sdk.Errorf(sdk.KindTimeout, false, fmt.Sprintf("approve it with `%s` within the timeout", approve), "nobody approved within %s", timeout)
			}
			return nil, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
		case <-t.C:
		}
	}
}

// readApproval returns nil, nil while the file does not exist (or is being
// written).
func readApproval(path string) (*Approval, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInternal, false, "", "read approval: %v", err)
	}
	var ap Approval
	if err := json.Unmarshal(b, &ap); err != nil {
		return nil, nil // partly written; try again
	}
	return &ap, nil
}

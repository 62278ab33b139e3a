package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/runbookdev/runbook/internal/safeenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// execAction runs a command without a shell.
type execAction struct{}

// tailBytes is how much of stderr a failure message quotes.
const tailBytes = 2048

func (*execAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name:        "exec",
		Description: "Runs a command (no shell) and captures its output. A non-zero exit status fails the step with the tail of stderr.",
		Inputs: []sdk.Attribute{
			{Name: "command", Type: cty.String, Required: true, Description: "Program to run, looked up in PATH."},
			{Name: "args", Type: cty.List(cty.String), Description: "Arguments."},
			{Name: "read_only", Type: cty.Bool, Description: "The command changes nothing (a check): `plan` shows the step as read-only, not as the point of no return, and `rollback` does not list it as left undone. The command is run the same either way."},
			{Name: "env", Type: cty.Map(cty.String), Description: "Extra environment variables. The command inherits the engine's environment (PATH, HOME, ...) except RUNBOOK_STATE_KEY, RUNBOOK_STATE_KEY_FILE and RUNBOOK_VAR_*: pass what it needs here."},
			{Name: "dir", Type: cty.String, Description: "Working directory."},
			{Name: "stdin", Type: cty.String, Description: "Text written to the command's standard input."},
			{Name: "timeout", Type: cty.String, Description: "Kill the command after this duration (e.g. \"5m\")."},
		},
		Outputs: []sdk.Attribute{
			{Name: "stdout", Type: cty.String, Description: "Standard output."},
			{Name: "stderr", Type: cty.String, Description: "Standard error."},
			{Name: "exit_code", Type: cty.Number, Description: "Exit status."},
		},
	}
}

type execInputs struct {
	Command string            `cty:"command"`
	Args    []string          `cty:"args"`
	Env     map[string]string `cty:"env"`
	// ReadOnly only informs plan and rollback (lang.DeclaresReadOnly).
	ReadOnly *bool  `cty:"read_only"`
	Dir      string `cty:"dir"`
	Stdin    string `cty:"stdin"`
	Timeout  string `cty:"timeout"`
}

func (a *execAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in execInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	timeout, err := parseDuration("timeout", in.Timeout, 0)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, in.Command, in.Args...)
	stopGroup(cmd)
	cmd.Dir = in.Dir
	// The engine's secrets (state key, variable values) never reach a
	// command, even when this plugin runs in the engine's process: what a
	// command needs is given in `env`.
	cmd.Env = safeenv.Environ()
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+in.Env[k])
	}
	if in.Stdin != "" {
		cmd.Stdin = strings.NewReader(in.Stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ev.Log(sdk.LevelInfo, fmt.Sprintf("running %s", in.Command))
	err = cmd.Run()
	code := 0
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	out := cty.ObjectVal(map[string]cty.Value{
		"stdout":    cty.StringVal(stdout.String()),
		"stderr":    cty.StringVal(stderr.String()),
		"exit_code": cty.NumberIntVal(int64(code)),
	})
	res := &sdk.Result{Outputs: out}
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return res, sdk.Errorf(sdk.KindUnreachable, true, "raise timeout or check why the command hangs", "%s timed out after %s", in.Command, timeout)
	case ctx.Err() != nil:
		return res, &sdk.Error{Kind: sdk.KindCancelled, Err: ctx.Err()}
	case errors.Is(err, exec.ErrNotFound):
		return nil, sdk.Errorf(sdk.KindInvalid, false, "install it or use an absolute path", "command %q not found in PATH", in.Command)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return nil, sdk.Errorf(sdk.KindInternal, false, "", "run %s: %v", in.Command, err)
	}
	msg := fmt.Sprintf("%s exited with status %d", in.Command, code)
	if t := tail(stderr.String(), tailBytes); t != "" {
		msg += ": " + t
	}
	return res, sdk.Errorf(sdk.KindConflict, false, "", "%s", msg)
}

// tail returns the whole lines of s's last n bytes, trimmed. A tail that
// began inside a line could begin inside a secret, whose end the engine's
// masker would not know to mask: the partial line at the cut is dropped,
// and a last line longer than n is not quoted at all (the step's stderr
// output holds it, masked whole).
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := s[len(s)-n:]
	i := strings.IndexByte(cut, '\n')
	if i < 0 {
		last := len(s) - strings.LastIndexByte(s, '\n') - 1
		return fmt.Sprintf("(the last line of stderr is %d bytes, too long to quote: see the step's stderr output)", last)
	}
	return "..." + strings.TrimLeft(cut[i+1:], "\r\n")
}

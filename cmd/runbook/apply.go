package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
)

func init() {
	var vf varFlags
	var rf runFlags
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Run a runbook, undoing what was done if a step fails",
		Long: `Apply shows the plan, asks for confirmation on a terminal (with -auto-approve it
shows the plan without asking; with -json it shows none), then runs the steps as a
DAG. When a step fails (after its retries) with on_failure = "rollback" (the
default), nothing new starts, running steps finish,
always steps run, and every completed step with a rollback is undone in reverse
dependency order. Every state change is journaled under <state dir>/runs/<id>/
(see -state-dir).

Ctrl-C once stops cleanly and leaves the run resumable; twice exits at once.

Exit status: 0 success, 1 error or failed run, 2 failed and rolled back,
3 rollback failed, 4 interrupted or aborted (resumable).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], vf.sources(), rf, autoApprove)
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "do not ask for confirmation")
	rootCmd.AddCommand(cmd)
}

func runApply(stdout, stderr io.Writer, path string, vars lang.VarSources, rf runFlags, autoApprove bool) error {
	if p := os.Getenv("RUNBOOK_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	c, err := newCLI(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer c.close()
	rb, err := c.s.Open(vars, path)
	if err != nil {
		return c.fail(err)
	}
	defer rb.Close()
	confirm := c.confirm
	if autoApprove {
		confirm = c.showPlan
	}
	ctx, stop := c.interrupt()
	defer stop()
	out, err := rb.Apply(ctx, confirm)
	if errors.Is(err, session.ErrCancelled) {
		fmt.Fprintln(stderr, "Apply cancelled.")
		return withCode(exitError, nil)
	}
	if err != nil {
		return c.fail(err)
	}
	return c.finish(out)
}

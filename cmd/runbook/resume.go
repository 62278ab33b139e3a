package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
)

func init() {
	var vf varFlags
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "resume [RUN]",
		Short: "Continue an interrupted run where it stopped",
		Long: `Resume continues a run that was interrupted (Ctrl-C, a crash, on_failure = "abort").
Completed steps keep their journaled outputs; a step that was in flight is applied
again with the same idempotency key and its last checkpoint. Without RUN, the
latest unfinished run in the state directory is resumed. Sensitive variables that
were not stored (sealing off, or another state key) are asked for again (-var,
-var-file, RUNBOOK_VAR_x or a prompt), and the kept steps' inputs are rebuilt from
them.

Exit status: as for apply.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResume(cmd.OutOrStdout(), cmd.ErrOrStderr(), firstArg(args), vf.sources(), rf)
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	rootCmd.AddCommand(cmd)
}

func firstArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

func runResume(stdout, stderr io.Writer, id string, vars lang.VarSources, rf runFlags) error {
	c, err := newCLI(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer c.close()
	ctx, stop := c.interrupt()
	defer stop()
	out, err := c.s.Resume(ctx, id, vars)
	if err != nil {
		return c.fail(err)
	}
	return c.finish(out)
}

package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
)

func init() {
	var vf varFlags
	var rf runFlags
	var force, autoApprove bool
	var skip []string
	cmd := &cobra.Command{
		Use:   "rollback [RUN]",
		Short: "Undo a run: failed, interrupted, or finished long ago",
		Long: `Rollback undoes every step of RUN that completed (or failed with partial undo
state, or whose undo failed before) and is not undone yet, in reverse dependency
order, independent undos in parallel. It works on successful runs too.

Rollback first shows the undo plan: the undos in the order they run, native undo
or the rollback action of each, and the steps that completed but cannot be undone
(they declare no rollback: what they did stays). On a terminal it asks for "yes"
before undoing anything; -auto-approve skips the question, and is needed when
stdin is not a terminal.

Without RUN, the latest run of the runbook in the working directory is rolled back
(never another runbook's run that shares the state directory), or the latest run
in the state directory when the working directory holds no runbook; the run picked
is named before the plan. Sensitive variables the
run could not store (sealing off, or another state key) are asked for again (-var,
-var-file, RUNBOOK_VAR_x or a prompt), and the undo's inputs are rebuilt from them.

A native undo first checks that what its step left is unchanged (core.file: the
file's content, mode and owner); if something changed since, that undo fails with
kind conflict naming what changed, and the rollback stops there. -force undoes
anyway, destroying the later change.

-skip STEP (repeatable; a step address, or a step name for all its instances)
leaves that step as it is: the skip is recorded in the run's journal, and the undo
goes on with the steps it depends on. For an undo that failed and cannot be
fixed.

Exit status: 0 rolled back, 1 error, 3 an undo failed (run rollback again), 4 interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRollback(cmd.OutOrStdout(), cmd.ErrOrStderr(), firstArg(args), vf.sources(), rf, skip, session.RollbackOptions{Force: force}, autoApprove)
		},
	}
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "do not show the undo plan and ask for confirmation")
	cmd.Flags().BoolVar(&force, "force", false, "undo even where a step's result was changed since (overwrites the later change)")
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	cmd.Flags().StringArrayVar(&skip, "skip", nil, "do not undo STEP (recorded in the journal); repeatable")
	rootCmd.AddCommand(cmd)
}

func runRollback(stdout, stderr io.Writer, id string, vars lang.VarSources, rf runFlags, skip []string, ro session.RollbackOptions, autoApprove bool) error {
	c, err := newCLI(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer c.close()
	c.rollback = true
	ctx, stop := c.interrupt()
	defer stop()
	if len(skip) > 0 {
		if id == "" {
			return c.fail(errors.New("-skip needs the RUN whose steps to skip"))
		}
		if id, err = c.s.SkipUndo(id, skip...); err != nil {
			return c.fail(err)
		}
	}
	ro.Preview = !autoApprove
	ro.Confirm = func(p *session.UndoPlan) (bool, error) {
		if p.Picked {
			c.flush()
			fmt.Fprintln(stderr, c.mask.Mask(view.PickedRun(p)))
		}
		if autoApprove {
			return true, nil
		}
		return c.confirmUndo(p)
	}
	out, err := c.s.Rollback(ctx, id, vars, ro)
	if errors.Is(err, session.ErrCancelled) {
		c.flush()
		fmt.Fprintln(stderr, "Rollback cancelled: nothing was undone.")
		return withCode(exitError, nil)
	}
	if err != nil {
		return c.fail(err)
	}
	if out.AlreadyRolledBack {
		fmt.Fprintf(stdout, "Run %s is already rolled back.\n", out.RunID)
		return nil
	}
	if code := exitCode(out); code == exitRolledBack {
		c.finish(out)
		return nil // for rollback, rolled back is success
	}
	return c.finish(out)
}

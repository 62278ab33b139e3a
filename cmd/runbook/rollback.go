package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
)

func init() {
	var vf varFlags
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "rollback [RUN]",
		Short: "Undo a run: failed, interrupted, or finished long ago",
		Long: `Rollback undoes every step of RUN that completed (or failed with partial undo
state, or whose undo failed before) and is not undone yet, in reverse dependency
order, independent undos in parallel. It works on successful runs too. Without
RUN, the latest run in the state directory is rolled back.

Exit status: 0 rolled back, 1 error, 3 an undo failed (run rollback again), 4 interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return runRollback(cmd.OutOrStdout(), cmd.ErrOrStderr(), id, vf.sources(), rf)
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	rootCmd.AddCommand(cmd)
}

func runRollback(stdout, stderr io.Writer, id string, vars lang.VarSources, rf runFlags) error {
	s, err := newSession(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.close()
	l, err := s.openRun(id, vars, false)
	if err != nil {
		return s.fail(exitError, err)
	}
	defer l.j.Close()
	runID := l.state.Meta.ID
	if l.state.State == journal.RunRolledBack {
		s.releaseLock(true)
		fmt.Fprintf(stdout, "Run %s is already rolled back.\n", runID)
		return nil
	}
	cmds := s.commands(runID)
	ctx, stop := interruptContext(s, func() string { return "Continue with: " + cmds.rollback })
	defer stop()
	s.sink.Emit(event.Event{V: event.Version, Type: event.RunStarted, Time: time.Now().UTC(), RunID: runID, Message: "rollback",
		Fields: map[string]string{"journal": s.store.Location(runID)}})
	res, err := run.Rollback(ctx, run.FromConfig(l.scope), run.Options{
		RunID: runID, Parallelism: rf.parallelism, Providers: s.host, Journal: l.j, Sealer: s.sealer, Sink: s.sink, Mask: s.mask,
	}, l.state)
	if err != nil {
		s.releaseLock(false)
		return s.fail(exitError, err)
	}
	s.releaseLock(journal.Finished(res.State))
	if err := s.finish(res, runID); err != nil {
		var ce *exitCodeError
		if asCode(err, &ce) && ce.code == exitRolledBack {
			return nil // for rollback, rolled back is success
		}
		return err
	}
	return nil
}

func asCode(err error, target **exitCodeError) bool {
	ce, ok := err.(*exitCodeError)
	if ok {
		*target = ce
	}
	return ok
}

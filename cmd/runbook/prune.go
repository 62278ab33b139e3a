package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
)

// pruneCmd is `runbook runs prune` (its -state-dir is the runs command's).
func pruneCmd() *cobra.Command {
	var o session.PruneOptions
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove old finished runs from the state directory",
		Long: `Prune removes the journals of finished runs (succeeded or rolled_back) that
ended more than -older-than ago, keeping the -keep newest runs of each runbook
whatever their state. Runs that are failed, aborted, interrupted, running,
rollback_failed or corrupt are never removed, nor a run a live process holds
or that still holds its lock key. A removed run can no longer be shown or
rolled back. -dry-run lists what would be removed. Asks on a terminal;
-auto-approve otherwise. See docs/state.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stateDir, _ := cmd.Flags().GetString("state-dir")
			return runsPrune(cmd.OutOrStdout(), cmd.ErrOrStderr(), os.Stdin, stateDir, o, autoApprove)
		},
	}
	cmd.Flags().DurationVar(&o.OlderThan, "older-than", 30*24*time.Hour, "remove only runs that ended at least this long ago (0: any age)")
	cmd.Flags().IntVar(&o.Keep, "keep", 10, "keep this many of the newest runs of each runbook")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list the runs that would be removed; remove nothing")
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "do not ask for confirmation")
	return cmd
}

func runsPrune(stdout, stderr io.Writer, stdin *os.File, stateDir string, o session.PruneOptions, autoApprove bool) error {
	if o.Keep < 0 || o.OlderThan < 0 {
		return withCode(exitError, errors.New("-keep and -older-than cannot be negative"))
	}
	s, err := runsSession(stateDir, stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	var confirm func([]*journal.State) (bool, error)
	if !autoApprove {
		confirm = func(runs []*journal.State) (bool, error) {
			if !term.IsTerminal(int(stdin.Fd())) {
				return false, errors.New("stdin is not a terminal: pass -auto-approve to prune without confirmation, or -dry-run to list")
			}
			printPruned(stderr, runs)
			fmt.Fprintf(stderr, "Remove these %d runs from %s? Only 'yes' is accepted: ", len(runs), s.Where())
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			return strings.TrimSpace(line) == "yes", nil
		}
	}
	runs, err := s.Prune(o, confirm)
	if errors.Is(err, session.ErrCancelled) {
		fmt.Fprintln(stderr, "Prune cancelled.")
		return withCode(exitError, nil)
	}
	if err != nil && len(runs) == 0 {
		return withCode(exitError, err)
	}
	verb := "Removed"
	if o.DryRun {
		verb = "Would remove"
	}
	if len(runs) > 0 && (o.DryRun || autoApprove) {
		printPruned(stdout, runs)
	}
	fmt.Fprintf(stdout, "%s %d runs from %s.\n", verb, len(runs), s.Where())
	if err != nil {
		return withCode(exitError, err)
	}
	return nil
}

func printPruned(w io.Writer, runs []*journal.State) {
	for _, st := range runs {
		fmt.Fprintf(w, "  %s  %-11s  %s  %s\n", st.Meta.ID, st.State, st.Updated.Local().Format(time.DateTime), st.Meta.Runbook)
	}
}

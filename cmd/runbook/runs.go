package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
)

// stateDirUsage is the help of every -state-dir flag.
const stateDirUsage = "where runs are journaled (default: $RUNBOOK_STATE_DIR, else the nearest .runbook directory walking up from the runbook, or from the current directory for commands without a runbook, else .runbook there)"

func init() {
	var stateDir string
	var asJSON, all bool
	var q session.RunQuery
	runs := &cobra.Command{Use: "runs", Short: "List and inspect journaled runs"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List runs, newest first, with the command that continues each",
		Long: `Ls lists the runs of the state directory (or database), newest first: the newest
50 unless -limit or -all says otherwise; -runbook, -lock and -status select runs
(with a database, in the query). A run whose process died (the journal says
running, no live process holds it) is listed as interrupted.
With -json: one document, see docs/runs-json.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.Limit < 0 {
				return withCode(exitError, fmt.Errorf("-limit %d: want 0 or more (0 or -all: every run)", q.Limit))
			}
			if all {
				q.Limit = 0
			}
			if err := checkStatus(q.Status); err != nil {
				return withCode(exitError, err)
			}
			return runsLs(cmd.OutOrStdout(), cmd.ErrOrStderr(), stateDir, q, asJSON)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON (docs/runs-json.md)")
	ls.Flags().IntVar(&q.Limit, "limit", 50, "list at most N runs, newest first")
	ls.Flags().BoolVar(&all, "all", false, "list every run (no -limit)")
	ls.Flags().StringVar(&q.Runbook, "runbook", "", "only the runs of the runbook with this name")
	ls.Flags().StringVar(&q.Lock, "lock", "", "only the runs of this lock key")
	ls.Flags().StringVar(&q.Status, "status", "", "only the runs in this state ("+strings.Join(runStates, ", ")+")")
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run: who, where, timeline, outputs, errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runsShow(cmd.OutOrStdout(), cmd.ErrOrStderr(), stateDir, args[0], asJSON)
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON (docs/runs-json.md)")
	runs.PersistentFlags().StringVar(&stateDir, "state-dir", "", stateDirUsage)
	runs.AddCommand(ls, show, pruneCmd())
	rootCmd.AddCommand(runs)
}

// runStates are the states -status selects.
var runStates = []string{journal.RunRunning, journal.RunInterrupted, journal.RunSucceeded, journal.RunFailed,
	journal.RunAborted, journal.RunRollingBack, journal.RunRolledBack, journal.RunRollbackFailed, journal.RunCorrupt}

// checkStatus refuses a -status that names no run state (it would list
// nothing, which reads as "no such run").
func checkStatus(st string) error {
	if st != "" && !slices.Contains(runStates, st) {
		return fmt.Errorf("-status %q: want one of %s", st, strings.Join(runStates, ", "))
	}
	return nil
}

// runsSession is a session over the runs of stateDir; its warnings (a run
// sealed with another state key) go to stderr.
func runsSession(stateDir string, stderr io.Writer) (*session.Session, error) {
	return session.New(session.Options{StateDir: stateDir, State: stateSpec, Sink: view.NewPlain(stderr, nil)})
}

func runEntry(ri *session.RunInfo) view.RunEntry {
	return view.RunEntry{State: ri.State, Resume: ri.Next.Resume, Rollback: ri.Next.Rollback}
}

func runsLs(w, stderr io.Writer, stateDir string, q session.RunQuery, asJSON bool) error {
	s, err := runsSession(stateDir, io.Discard)
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.Close()
	runs, more, err := s.FindRuns(q)
	if err != nil {
		return withCode(exitError, err)
	}
	entries := make([]view.RunEntry, 0, len(runs))
	for _, ri := range runs {
		entries = append(entries, runEntry(ri))
	}
	if err := view.WriteRuns(w, entries, asJSON); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(stderr, "(the newest %d runs; there are more: -limit N or -all)\n", q.Limit)
	}
	return nil
}

func runsShow(w, stderr io.Writer, stateDir, id string, asJSON bool) error {
	s, err := runsSession(stateDir, stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	ri, err := s.Run(id)
	if err != nil {
		return withCode(exitError, err)
	}
	return view.WriteRun(w, runEntry(ri), s.SealerFor(ri.State.Meta), asJSON)
}

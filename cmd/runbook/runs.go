package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
)

func init() {
	var stateDir string
	var asJSON bool
	runs := &cobra.Command{Use: "runs", Short: "List and inspect journaled runs"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runsLs(cmd.OutOrStdout(), stateDir, asJSON)
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run: who, where, timeline, outputs, errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runsShow(cmd.OutOrStdout(), cmd.ErrOrStderr(), stateDir, args[0], asJSON)
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	runs.PersistentFlags().StringVar(&stateDir, "state-dir", ".runbook", "where runs are journaled")
	runs.AddCommand(ls, show)
	rootCmd.AddCommand(runs)
}

// runsSession is a session over the runs of stateDir; its warnings (a run
// sealed with another state key) go to stderr.
func runsSession(stateDir string, stderr io.Writer) (*session.Session, error) {
	return session.New(session.Options{StateDir: stateDir, Sink: view.NewPlain(stderr, nil)})
}

func runsLs(w io.Writer, stateDir string, asJSON bool) error {
	s, err := runsSession(stateDir, io.Discard)
	if err != nil {
		return withCode(exitError, err)
	}
	states, err := s.Runs()
	if err != nil {
		return withCode(exitError, err)
	}
	return view.WriteRuns(w, states, asJSON)
}

func runsShow(w, stderr io.Writer, stateDir, id string, asJSON bool) error {
	s, err := runsSession(stateDir, stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	st, err := s.Run(id)
	if err != nil {
		return withCode(exitError, err)
	}
	return view.WriteRun(w, st, s.SealerFor(st.Meta), asJSON)
}

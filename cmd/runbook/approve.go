package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/approval"
	"github.com/runbookdev/runbook/engine/session"
)

func init() {
	var stateDir string
	var reject bool
	cmd := &cobra.Command{
		Use:   "approve RUN STEP",
		Short: "Approve (or -reject) a core.approve step waiting in a run",
		Long: `Approve answers a core.approve step of a running run: it writes
<state dir>/approvals/<RUN>/<STEP>.json, which the waiting step reads.
STEP is the step address, e.g. go_live or db["cozy"].`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := runsSession(stateDir, cmd.ErrOrStderr())
			if err != nil {
				return withCode(exitError, err)
			}
			// The run is in the state (a directory or the database); its
			// approvals in the state directory, where core.approve waits.
			stateDir := s.StateDir()
			ri, err := s.Run(args[0])
			if err != nil {
				return withCode(exitError, err)
			}
			id := ri.State.Meta.ID
			who := session.Holder()
			if err := approval.Write(stateDir, id, args[1], who.User+"@"+who.Host, !reject); err != nil {
				return withCode(exitError, err)
			}
			verb := "Approved"
			if reject {
				verb = "Rejected"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s step %s of run %s.\n", verb, args[1], id)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", stateDirUsage)
	cmd.Flags().BoolVar(&reject, "reject", false, "reject instead of approving")
	rootCmd.AddCommand(cmd)
}

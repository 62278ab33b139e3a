package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/session"
)

// approveSanitize matches what core.approve replaces in a step address.
var approveSanitize = regexp.MustCompile(`[^A-Za-z0-9._-]`)

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
			rec := map[string]any{"approved_by": who.User + "@" + who.Host, "at": time.Now().UTC().Format(time.RFC3339), "approved": !reject}
			b, _ := json.Marshal(rec)
			dir := filepath.Join(stateDir, "approvals", id)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return withCode(exitError, err)
			}
			path := filepath.Join(dir, approveSanitize.ReplaceAllString(args[1], "_")+".json")
			tmp := path + ".tmp"
			if err := os.WriteFile(tmp, b, 0o600); err != nil {
				return withCode(exitError, err)
			}
			if err := os.Rename(tmp, path); err != nil {
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

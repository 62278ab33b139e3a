package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() {
	var stateDir string
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "unlock KEY",
		Short: "Release a lock whose holder is gone",
		Long: `Unlock releases the lock KEY (a runbook's lock key, as lock errors print it)
whatever run holds it, so that new runs may start. A lock held by a running
process (on this host, or another host whose heartbeat is recent) is never
released. The run that held it is left as it is: an unfinished run can still be
resumed or rolled back. Asks on a terminal; -auto-approve otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnlock(cmd.OutOrStdout(), cmd.ErrOrStderr(), os.Stdin, args[0], stateDir, autoApprove)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", stateDirUsage)
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "do not ask for confirmation")
	rootCmd.AddCommand(cmd)
}

func runUnlock(stdout, stderr io.Writer, stdin *os.File, key, stateDir string, autoApprove bool) error {
	s, err := runsSession(stateDir, stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	st, err := s.LockStatus(key)
	if err != nil {
		return withCode(exitError, err)
	}
	if st.Holder.RunID == "" && st.Unreadable == nil {
		fmt.Fprintf(stdout, "Lock %q is free.\n", key)
		return nil
	}
	if !autoApprove && !st.Active {
		if !term.IsTerminal(int(stdin.Fd())) {
			return withCode(exitError, errors.New("stdin is not a terminal: pass -auto-approve to unlock without confirmation"))
		}
		why := ""
		if st.Stale != "" {
			why = " (stale: " + st.Stale + ")"
		}
		if st.Unreadable != nil {
			why = fmt.Sprintf(": its lock file cannot be read (%v), and no process holds it", st.Unreadable)
		}
		fmt.Fprintf(stderr, "Lock %q is held by %s%s.\nRelease it? Only 'yes' is accepted: ", key, st.Holder, why)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			fmt.Fprintln(stderr, "Unlock cancelled.")
			return withCode(exitError, nil)
		}
	}
	h, err := s.Unlock(key)
	if err != nil {
		return withCode(exitError, err)
	}
	fmt.Fprintf(stdout, "Released lock %q (held by %s).\n", key, h)
	return nil
}

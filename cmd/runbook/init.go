package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

func init() {
	var upgrade bool
	cmd := &cobra.Command{
		Use:   "init [PATH]",
		Short: "Find the runbook's external plugins and pin their checksums in .runbook.lock.hcl",
		Long: `init finds every external plugin the runbook at PATH (default: the current directory)
uses — from its plugin "NAME" blocks and its steps — in ./.runbook/plugins,
$XDG_DATA_HOME/runbook/plugins or the block's source, checks that each one starts and
speaks the plugin protocol, and records its version and sha256 in .runbook.lock.hcl
beside the runbook. Commit that file: every later run refuses a plugin whose
checksum differs.

A plugin already locked with another checksum is refused unless -upgrade is given.

init also creates the state key that seals the secrets runs journal, when there is none
(see docs/cli.md, "The state key").`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "."
			if len(args) == 1 {
				path = args[0]
			}
			return runInit(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), path, upgrade)
		},
	}
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "accept new checksums of plugins already in the lock file")
	rootCmd.AddCommand(cmd)
}

func runInit(ctx context.Context, stdout, stderr io.Writer, path string, upgrade bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := session.New(session.Options{Stderr: stderr, Builtins: builtin.All()})
	if err != nil {
		return err
	}
	defer s.Close()
	created, err := s.EnsureKey()
	if err != nil {
		return err
	}
	if fp, src := s.KeyInfo(); created != "" {
		fmt.Fprintf(stdout, "created the state key %s (fingerprint %s): it seals the secrets runs journal; keep it\n", created, fp)
	} else if fp != "" {
		fmt.Fprintf(stdout, "state key %s (fingerprint %s)\n", src, fp)
	}
	rep, err := s.LockPlugins(ctx, path, upgrade)
	var de *session.DiagError
	if errors.As(err, &de) {
		return reportErr(stderr, s, err)
	} else if err != nil {
		return err
	}
	for _, r := range rep.Refused {
		fmt.Fprintln(stderr, r)
	}
	if len(rep.Refused) > 0 {
		return fmt.Errorf("%d plugin(s) changed since they were locked; check them, then run `runbook init -upgrade` to accept", len(rep.Refused))
	}
	for _, p := range rep.Plugins {
		fmt.Fprintf(stdout, "%s %s %s (sha256 %s…)\n", p.Verb, p.Name, p.Version, p.SHA256[:16])
	}
	fmt.Fprintf(stdout, "wrote %s (%d external plugin(s)); commit it.\n", rep.Path, len(rep.Plugins))
	return nil
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/plugins/builtin"
)

// pluginCmd is the hidden `runbook plugin serve NAME`: the plugin host
// re-executes the runbook binary this way to run a builtin plugin out of
// process.
var pluginCmd = &cobra.Command{
	Use:    "plugin",
	Short:  "Internal: serve a builtin plugin",
	Hidden: true,
}

var pluginServeCmd = &cobra.Command{
	Use:   "serve NAME",
	Short: "Serve the builtin plugin NAME over the plugin protocol (started by runbook itself)",
	Args:  cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		return builtin.Serve(args[0])
	},
}

func init() {
	pluginCmd.AddCommand(pluginServeCmd)
	rootCmd.AddCommand(pluginCmd)
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/internal/pluginwire"
)

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version, the build's commit and the plugin protocol version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, args []string) { fmt.Fprint(cmd.OutOrStdout(), versionText()) },
	})
	rootCmd.SetVersionTemplate("{{ .Version }}")
	rootCmd.Version = versionText()
}

// versionText is what `runbook version` and `runbook -version` print: the
// version, the commit the binary was built from (from Go's build info;
// "+dirty" when the tree had changes), the plugin protocol version, and
// the platform.
func versionText() string {
	if commit != "" {
		return fmt.Sprintf(versionFormat, version, commit, pluginwire.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		dirty := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		rev += dirty
	}
	return fmt.Sprintf(versionFormat, version, rev, pluginwire.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const versionFormat = "runbook %s\ncommit %s\nplugin protocol %d\n%s %s/%s\n"

// commit is set by `make build` (-ldflags -X main.commit=...) where Go's
// own VCS stamping is off (GOFLAGS=-buildvcs=false).
var commit string

// Command testplugin serves the "testing" plugin when run without
// arguments (as runbook-plugin-testing), and `plugin serve NAME` like the
// runbook binary, for any builtin or "testing".
package main

import (
	"fmt"
	"os"

	"github.com/runbookdev/runbook/internal/plugintest"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

func main() {
	args := os.Args[1:]
	if len(args) == 3 && args[0] == "plugin" && args[1] == "serve" {
		if args[2] == "testing" {
			sdk.Serve(plugintest.New())
			return
		}
		if err := builtin.Serve(args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	sdk.Serve(plugintest.New())
}

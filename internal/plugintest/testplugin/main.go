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
		p, ok := builtin.Get(args[2])
		if !ok {
			fmt.Fprintf(os.Stderr, "no builtin plugin %q\n", args[2])
			os.Exit(1)
		}
		sdk.Serve(p)
		return
	}
	sdk.Serve(plugintest.New())
}

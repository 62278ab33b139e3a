package builtin

import "github.com/runbookdev/runbook/plugins/core"

func init() {
	register("core", core.New)
	// core's actions wait on commands, files and the network; none of them
	// computes much (see Procs).
	procs["core"] = 1
}

package builtin

import "github.com/runbookdev/runbook/plugins/synapse"

func init() { register("synapse", synapse.New) }

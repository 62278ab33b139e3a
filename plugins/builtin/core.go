package builtin

import "github.com/runbookdev/runbook/plugins/core"

func init() { register("core", core.New) }

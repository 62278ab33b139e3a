package builtin

import "github.com/runbookdev/runbook/plugins/whawty"

func init() { register("whawty", whawty.New) }

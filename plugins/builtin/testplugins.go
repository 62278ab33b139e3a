//go:build runbooktest

package builtin

import "github.com/runbookdev/runbook/engine/run/testplugin"

// The executor's end-to-end tests build the runbook binary with
// -tags runbooktest to get the "ledger" test plugin.
func init() { register("ledger", testplugin.New) }

// Command runbook-plugin-ledger serves the ledger test plugin as an
// external plugin. Tests build it (it is not part of the runbook binary)
// and point runbooks at it with a plugin block and a lock file entry.
package main

import (
	"github.com/runbookdev/runbook/internal/ledger"
	"github.com/runbookdev/runbook/sdk"
)

func main() { sdk.Serve(ledger.New()) }

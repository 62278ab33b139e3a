package builtin

import (
	"github.com/runbookdev/runbook/plugins/hubic"
	"github.com/runbookdev/runbook/plugins/swift"
)

func init() {
	register("hubic", hubic.New)
	register("swift", swift.New)
}

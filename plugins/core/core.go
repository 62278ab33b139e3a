// Package core is the builtin "core" plugin: the generic actions every
// runbook needs (run a command, check an HTTP endpoint, wait, assert, ask
// for approval, write a file) plus core.noop for tests and examples.
package core

import (
	"fmt"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

// Version of the core plugin; it ships with the runbook binary.
const Version = "0.1.0"

// New returns the core plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "core",
		Version: Version,
		Actions: []sdk.Action{
			&execAction{},
			&noopAction{},
			&httpAction{},
			&sleepAction{},
			&assertAction{},
			&approveAction{},
			&fileAction{},
		},
	}
}

// parseDuration parses an optional duration input; "" gives def.
func parseDuration(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, sdk.Errorf(sdk.KindInvalid, false, fmt.Sprintf("write %s as a Go duration such as \"30s\" or \"5m\"", name), "%s: invalid duration %q", name, s)
	}
	return d, nil
}

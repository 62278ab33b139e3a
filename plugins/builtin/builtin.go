// Package builtin lists the plugins that ship inside the runbook binary.
// They still run out of process: the host re-executes the runbook binary as
// `runbook plugin serve NAME`.
package builtin

import (
	"sort"

	"github.com/runbookdev/runbook/sdk"
)

// registry maps a plugin name to its constructor. Each backend adds itself
// here.
var registry = map[string]func() *sdk.Plugin{}

// Register is called from this package's files, one per builtin plugin.
func register(name string, f func() *sdk.Plugin) { registry[name] = f }

// Get returns a fresh builtin plugin by name.
func Get(name string) (*sdk.Plugin, bool) {
	f, ok := registry[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

// Names lists the builtin plugins, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

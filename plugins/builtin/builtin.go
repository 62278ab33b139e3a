// Package builtin lists the plugins that ship inside the runbook binary.
// They still run out of process: the host re-executes the runbook binary as
// `runbook plugin serve NAME`.
package builtin

import (
	"fmt"
	"os"
	"runtime"
	"sort"

	"github.com/runbookdev/runbook/sdk"
)

// registry maps a plugin name to its constructor. Each backend adds itself
// here.
var registry = map[string]func() *sdk.Plugin{}

// procs maps a plugin name to the number of threads that run its Go code
// at once (GOMAXPROCS), where that is not the machine's core count.
var procs = map[string]int{}

// Register is called from this package's files, one per builtin plugin.
func register(name string, f func() *sdk.Plugin) { registry[name] = f }

// Procs is how many threads should run the named plugin's Go code at once
// (runtime.GOMAXPROCS), or 0 for the default. A plugin whose actions wait
// on processes and the network rather than compute is served faster by one:
// handing a call between goroutines then never has to wake another thread,
// which is most of the cost of a small call.
func Procs(name string) int { return procs[name] }

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

// Registry is the set of builtin plugins as the plugin host takes it
// (pluginhost.Options.Builtins): the engine knows no plugin, the runbook
// command hands it this one.
type Registry struct{}

// All returns the registry of every builtin plugin.
func All() Registry { return Registry{} }

// Names lists the builtin plugins, sorted.
func (Registry) Names() []string { return Names() }

// Get returns a fresh builtin plugin by name.
func (Registry) Get(name string) (*sdk.Plugin, bool) { return Get(name) }

// Serve serves the named builtin plugin over the plugin protocol: what
// `runbook plugin serve NAME` does. It returns when the engine stops it.
func Serve(name string) error {
	p, ok := Get(name)
	if !ok {
		return fmt.Errorf("no builtin plugin %q (builtins: %v)", name, Names())
	}
	if n := Procs(name); n > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(n)
	}
	sdk.Serve(p)
	return nil
}

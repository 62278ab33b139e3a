// Command runbook-plugin-hello is an example third-party runbook plugin.
//
//	go build -o .runbook/plugins/runbook-plugin-hello ./examples/plugin-hello
//	runbook init    # records its sha256 in .runbook.lock.hcl
//
// It has two actions: hello.greet (input name, output message) and
// hello.crash (panics, to show how the engine reports a crashed plugin).
package main

import "github.com/runbookdev/runbook/sdk"

func main() { sdk.Serve(New()) }

// New returns the hello plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "hello",
		Version: "0.1.0",
		Actions: []sdk.Action{&greet{}, &crash{}},
	}
}

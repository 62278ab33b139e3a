//go:build !unix

package sdk

import "os"

// stopSignals: without SIGTERM the plugin learns that its engine is gone by
// being reparented (or interrupted).
var stopSignals = []os.Signal{os.Interrupt}

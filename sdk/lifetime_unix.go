//go:build unix

package sdk

import (
	"os"
	"syscall"
)

// stopSignals are the signals by which a plugin learns that its engine is
// gone (the engine asks the kernel to send SIGTERM when it dies, on Linux).
var stopSignals = []os.Signal{syscall.SIGTERM}

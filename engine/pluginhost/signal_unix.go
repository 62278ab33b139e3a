//go:build unix

package pluginhost

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// signalName turns Go's description of a signal ("killed") into its name
// with the description ("SIGKILL (killed)"); an unknown one is returned as
// it is.
func signalName(desc string) string {
	for s := syscall.Signal(1); s < 65; s++ {
		if s.String() == desc {
			if name := unix.SignalName(s); name != "" {
				return name + " (" + desc + ")"
			}
		}
	}
	return desc
}

//go:build !unix

package pluginhost

// signalName: no signal names to look up.
func signalName(desc string) string { return desc }

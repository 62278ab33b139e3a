//go:build !linux

package pluginhost

import "os/exec"

// dieWithEngine: without Linux's parent-death signal the plugin notices it
// was reparented (sdk/lifetime.go).
func dieWithEngine(cmd *exec.Cmd) {}

package pluginhost

import (
	"os/exec"
	"syscall"
)

// dieWithEngine asks the kernel to send the plugin SIGTERM when the engine
// dies, however it dies (see sdk/lifetime.go for what the plugin then does).
func dieWithEngine(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

//go:build unix

package core

import (
	"os/exec"
	"syscall"
	"time"
)

// killDelay is how long a cancelled command's process group has between
// SIGTERM and SIGKILL.
var killDelay = 5 * time.Second

// stopGroup runs the command in its own process group and, when the step
// is cancelled, stops the whole group: SIGTERM, then SIGKILL killDelay
// later. Without it a command's children (`sh -c 'a | b'`, a daemon it
// forked) outlive the step and keep its output pipes open.
func stopGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		pgid := -cmd.Process.Pid
		err := syscall.Kill(pgid, syscall.SIGTERM)
		time.AfterFunc(killDelay, func() { _ = syscall.Kill(pgid, syscall.SIGKILL) })
		return err
	}
	// Stop waiting for output once the group was killed, even if some
	// grandchild escaped into another group and still holds the pipes.
	cmd.WaitDelay = killDelay + time.Second
}

//go:build !unix

package core

import "os/exec"

func stopGroup(cmd *exec.Cmd) {}

package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunMainWithRunbook builds the runbook binary into a temporary directory,
// sets *exe to its path (builtin plugins are that binary started again in
// plugin mode), runs the tests as RunMain does and removes the binary.
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunMainWithRunbook(m, &selfExe)) }
func RunMainWithRunbook(m *testing.M, exe *string) int {
	dir, err := os.MkdirTemp("", "runbook-bin")
	if err != nil {
		fmt.Fprintf(os.Stderr, "build runbook: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	*exe = filepath.Join(dir, "runbook")
	cmd := exec.Command("go", "build", "-o", *exe, "github.com/runbookdev/runbook/cmd/runbook")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build runbook: %v\n%s", err, out)
		return 1
	}
	return RunMain(m)
}

// Command runbook runs risky operational procedures from reviewed HCL files.
//
// This package only wires flags to engine calls and views; each command lives
// in its own file and registers itself on rootCmd in init().
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes (documented in docs/cli.md).
const (
	exitOK             = 0
	exitError          = 1 // invalid runbook, failed run, bad usage
	exitRolledBack     = 2 // the run failed and was rolled back cleanly
	exitRollbackFailed = 3 // the run failed and an undo failed too
	exitInterrupted    = 4 // interrupted; the run is resumable
)

// exitError carries an exit code through cobra.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// withCode wraps err so that main exits with code. A nil err with a non-zero
// code means "already reported, just exit".
func withCode(code int, err error) error { return &exitCodeError{code: code, err: err} }

var version = "dev"

var rootCmd = &cobra.Command{
	Use:           "runbook",
	Short:         "Run risky operational procedures from reviewed HCL files",
	Long:          "runbook runs the steps of an HCL runbook as a DAG through out-of-process plugins,\nundoes what was done when a step fails, and journals every run so it can be\nresumed after a crash or rolled back later.",
	SilenceUsage:  true,
	SilenceErrors: true,
	Version:       version,
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

func execute(args []string) int {
	rootCmd.SetArgs(singleDashLongFlags(args))
	err := rootCmd.Execute()
	if err == nil {
		return exitOK
	}
	var ce *exitCodeError
	if errors.As(err, &ce) {
		if ce.err != nil {
			fmt.Fprintln(os.Stderr, "Error:", ce.err)
		}
		return ce.code
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	return exitError
}

// singleDashLongFlags accepts Terraform-style long flags with one dash
// (-var k=v, -json, -check) by rewriting them to the --form cobra expects.
// Arguments after "--" are left alone.
func singleDashLongFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, _, _ := strings.Cut(a, "=")
		if len(name) > 2 && name[0] == '-' && name[1] != '-' && isFlagName(name[1:]) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

func isFlagName(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

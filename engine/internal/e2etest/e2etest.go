// Package e2etest sets up the engine's end-to-end tests: the runbook
// binary and the ledger test plugin (runbook-plugin-ledger), built once
// into a temporary directory, with a configuration directory of the
// tests' own.
package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/runbookdev/runbook/engine/pluginhost"
)

// Binaries are the programs the tests run, in Dir.
type Binaries struct {
	Dir       string // the temporary directory; the caller removes it
	Runbook   string // the runbook binary
	Ledger    string // runbook-plugin-ledger
	LedgerSum string // its sha256, as the lock file pins it
}

// Build makes a temporary directory (named after pattern, as
// os.MkdirTemp), points XDG_CONFIG_HOME into it so that the state keys
// the runs create never go to the user's configuration, and builds the
// runbook binary and the ledger plugin there, each `go build` run with
// env added to the environment.
func Build(pattern string, env ...string) (*Binaries, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	b := &Binaries{Dir: dir, Runbook: filepath.Join(dir, "runbook"), Ledger: filepath.Join(dir, "runbook-plugin-ledger")}
	for _, p := range [][2]string{
		{b.Runbook, "github.com/runbookdev/runbook/cmd/runbook"},
		{b.Ledger, "github.com/runbookdev/runbook/internal/ledger/runbook-plugin-ledger"},
	} {
		cmd := exec.Command("go", "build", "-o", p[0], p[1])
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("build %s: %v\n%s", p[1], err, out)
		}
	}
	if b.LedgerSum, err = pluginhost.FileSHA256(b.Ledger); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// MustBuild is Build for TestMain: on error it prints the error and exits
// with status 1.
func MustBuild(pattern string, env ...string) *Binaries {
	b, err := Build(pattern, env...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return b
}

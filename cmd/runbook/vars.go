package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/lang"
)

// varFlags are the -var and -var-file options shared by plan, apply and
// resume.
type varFlags struct {
	vars  []string
	files []string
}

// addVarFlags registers -var and -var-file on cmd.
func addVarFlags(cmd *cobra.Command, f *varFlags) {
	cmd.Flags().StringArrayVar(&f.vars, "var", nil, "set a variable: NAME=VALUE (repeatable; non-string values are HCL expressions)")
	cmd.Flags().StringArrayVar(&f.files, "var-file", nil, "read variables from an .hcl or .json file of NAME = VALUE (repeatable)")
}

// sources returns where variable values come from: the flags, the
// RUNBOOK_VAR_NAME environment, and a prompt when stdin is a terminal.
func (f *varFlags) sources() lang.VarSources {
	src := lang.VarSources{Args: f.vars, Files: f.files, Env: os.Environ()}
	if term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd())) {
		src.Prompt = promptVariable
	}
	return src
}

var stdinReader = bufio.NewReader(os.Stdin)

// promptVariable asks for a variable on the terminal; sensitive values are
// read without echo.
func promptVariable(v *lang.Variable) (string, error) {
	fmt.Fprintf(os.Stderr, "var.%s (%s)\n", v.Name, v.TypeString())
	if v.Description != "" {
		fmt.Fprintf(os.Stderr, "  %s\n", v.Description)
	}
	fmt.Fprint(os.Stderr, "  Enter a value: ")
	if v.Sensitive {
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", fmt.Errorf("read value: %w", err)
		}
		return string(b), nil
	}
	line, err := stdinReader.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read value: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check runbooks: syntax, references, cycles, and every step's inputs against its plugin's schema",
		Long: `Validate checks each runbook (a file, or a directory whose *.hcl and *.runbook.json
files form one runbook; default: the current directory) without running anything.
It reports every problem with its file:line:col and a source snippet. When the files
of a directory cannot form one runbook (two have a runbook block, or declare the same
step, variable, local, output or plugin), each file is validated as its own runbook;
validate says which rule it applied.

Exit status: 0 when every runbook is valid, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print diagnostics as JSON on stdout")
	rootCmd.AddCommand(cmd)
}

func runValidate(stdout, stderr io.Writer, paths []string, asJSON bool) error {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	invalid := 0
	var all []lang.JSONDiagnostic
	for _, p := range expandRunbookDirs(stdout, paths, asJSON, &all) {
		cfg, diags := loadAndCheck(p)
		if diags.HasErrors() {
			invalid++
		}
		if asJSON {
			all = append(all, cfg.JSONDiagnostics(diags)...)
			continue
		}
		if err := printDiags(stderr, cfg, diags); err != nil {
			return err
		}
		if !diags.HasErrors() {
			fmt.Fprintf(stdout, "%s: the runbook is valid.\n", p)
		}
	}
	if asJSON {
		if err := lang.WriteJSONReport(stdout, all); err != nil {
			return err
		}
	}
	if invalid > 0 {
		return withCode(exitError, nil)
	}
	return nil
}

// expandRunbookDirs returns paths with each directory whose files do not
// form one runbook (lang.SeparateRunbooks) replaced by its files, each
// validated as its own runbook. Which rule applied to a directory of
// several files is said on stdout (with -json, as a warning in all when
// the files are split).
func expandRunbookDirs(stdout io.Writer, paths []string, asJSON bool, all *[]lang.JSONDiagnostic) []string {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			out = append(out, p)
			continue
		}
		files, err := lang.DirFiles(p)
		if err != nil || len(files) < 2 {
			out = append(out, p)
			continue
		}
		separate, why := lang.SeparateRunbooks(files)
		if !separate {
			if !asJSON {
				fmt.Fprintf(stdout, "%s: its %d files form one runbook (names are shared across the files of a directory).\n", p, len(files))
			}
			out = append(out, p)
			continue
		}
		msg := fmt.Sprintf("%s: its files do not form one runbook (%s): each file is validated as its own runbook.", p, why)
		if asJSON {
			*all = append(*all, lang.JSONDiagnostic{Severity: "warning", Summary: "Files validated as separate runbooks", Detail: msg})
		} else {
			fmt.Fprintln(stdout, msg)
		}
		out = append(out, files...)
	}
	return out
}

// loadAndCheck loads one runbook and, when it parsed, checks its steps
// against the plugins' schemas.
func loadAndCheck(paths ...string) (*lang.Config, hcl.Diagnostics) {
	s, err := session.New(session.Options{Builtins: builtin.All()})
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot open a session", Detail: err.Error()}}
	}
	defer s.Close()
	return s.Check(paths...)
}

// printDiags writes diagnostics with snippets, in color on a terminal
// unless NO_COLOR is set.
func printDiags(w io.Writer, cfg *lang.Config, diags hcl.Diagnostics) error {
	if len(diags) == 0 {
		return nil
	}
	var width uint
	color := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			width = uint(cols)
		}
		color = os.Getenv("NO_COLOR") == ""
	}
	return cfg.WriteDiagnostics(w, diags, width, color)
}

// reportErr prints a session error: diagnostics with their snippets, or
// the masked message.
func reportErr(stderr io.Writer, s *session.Session, err error) error {
	var de *session.DiagError
	if errors.As(err, &de) && len(de.Diags) > 0 {
		printDiags(stderr, de.Config, de.Diags)
		return withCode(exitError, nil)
	}
	fmt.Fprintln(stderr, "Error:", s.Mask().Mask(err.Error()))
	return withCode(exitError, nil)
}

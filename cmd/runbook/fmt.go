package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aymanbagabas/go-udiff"
	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
)

// exitFmtCheck is fmt -check's status when some file is not formatted.
const exitFmtCheck = 3

type fmtOptions struct {
	check, diff, recursive bool
}

func init() {
	var o fmtOptions
	cmd := &cobra.Command{
		Use:   "fmt [PATH...]",
		Short: "Rewrite runbook files (*.hcl) in the canonical format",
		Long: `Fmt rewrites *.hcl files in the canonical HCL format and prints the name of each
file it changed. PATH is a file or a directory (default: the current directory);
"-" formats standard input to standard output. JSON files are left alone.

Exit status: 0 on success, 1 on a syntax or file error, 3 with -check when a file
is not formatted.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFmt(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, o)
		},
	}
	cmd.Flags().BoolVar(&o.check, "check", false, "change nothing; list unformatted files and exit 3 if there are any")
	cmd.Flags().BoolVar(&o.diff, "diff", false, "print the changes as a unified diff")
	cmd.Flags().BoolVar(&o.recursive, "recursive", false, "also format files in subdirectories")
	rootCmd.AddCommand(cmd)
}

func runFmt(stdin io.Reader, stdout, stderr io.Writer, paths []string, o fmtOptions) error {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	failed, unformatted := false, false
	for _, p := range paths {
		if p == "-" {
			src, err := io.ReadAll(stdin)
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			out, diags := lang.FormatHCL("<stdin>", src)
			if diags.HasErrors() {
				printDiags(stderr, lang.SourceConfig("<stdin>", src), diags)
				failed = true
				continue
			}
			if !bytes.Equal(src, out) {
				unformatted = true
			}
			if o.diff {
				io.WriteString(stdout, unifiedDiff("<stdin>", string(src), string(out)))
			} else if !o.check {
				stdout.Write(out)
			}
			continue
		}
		files, err := lang.HCLFiles(p, o.recursive)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %s\n", err)
			failed = true
			continue
		}
		for _, f := range files {
			changed, err := fmtFile(stdout, stderr, f, o)
			if err != nil {
				if err != errReported {
					fmt.Fprintf(stderr, "Error: %s\n", err)
				}
				failed = true
				continue
			}
			unformatted = unformatted || changed
		}
	}
	switch {
	case failed:
		return withCode(exitError, nil)
	case o.check && unformatted:
		return withCode(exitFmtCheck, nil)
	}
	return nil
}

var errReported = fmt.Errorf("already reported")

func fmtFile(stdout, stderr io.Writer, name string, o fmtOptions) (changed bool, err error) {
	if strings.HasSuffix(name, ".json") {
		return false, nil // JSON runbooks are generated; their layout is the generator's
	}
	src, err := os.ReadFile(name)
	if err != nil {
		return false, err
	}
	out, diags := lang.FormatHCL(name, src)
	if diags.HasErrors() {
		printDiags(stderr, lang.SourceConfig(name, src), diags)
		return false, errReported
	}
	if bytes.Equal(src, out) {
		return false, nil
	}
	fmt.Fprintln(stdout, name)
	if o.diff {
		io.WriteString(stdout, unifiedDiff(name, string(src), string(out)))
	}
	if o.check {
		return true, nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return true, err
	}
	return true, os.WriteFile(name, out, st.Mode().Perm())
}

// unifiedDiff is a unified diff (3 lines of context) from a to b, "" when
// they are equal.
func unifiedDiff(name, a, b string) string {
	if a == b {
		return ""
	}
	return udiff.Unified(name, name+" (formatted)", a, b)
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/sdk"
)

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check runbooks: syntax, references, cycles, and every step's inputs against its plugin's schema",
		Long: `Validate checks each runbook (a file, or a directory whose *.hcl and *.runbook.json
files form one runbook; default: the current directory) without running anything.
It reports every problem with its file:line:col and a source snippet.

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
	for _, p := range paths {
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

// loadAndCheck loads one runbook and, when it parsed, checks its steps
// against the plugins' schemas.
func loadAndCheck(paths ...string) (*lang.Config, hcl.Diagnostics) {
	cfg, diags := lang.Load(paths...)
	if cfg == nil || len(cfg.Files) == 0 {
		return cfg, diags
	}
	h, err := openHost(cfg, "", io.Discard)
	if err != nil {
		return cfg, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot open plugins", Detail: err.Error()})
	}
	defer h.Close()
	return cfg, append(diags, cfg.Check(hostSchemas{h})...)
}

// hostSchemas adapts the plugin host to lang.SchemaSource and lang.ActionLister.
type hostSchemas struct{ h *pluginhost.Host }

var (
	_ lang.SchemaSource = hostSchemas{}
	_ lang.ActionLister = hostSchemas{}
)

func (s hostSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	return s.h.ActionSchema(plugin, action)
}

func (s hostSchemas) ActionNames(plugin string) ([]string, error) {
	ps, err := s.h.Schema(context.Background(), plugin)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ps.Actions))
	for n := range ps.Actions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
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

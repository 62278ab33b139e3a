package main

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

func init() {
	var vf varFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Show what a run would do, without running anything",
		Long: `Plan shows the execution order in parallel levels, each step's inputs as far as
they are known before the run ("(known after apply)" otherwise; sensitive values as
"(sensitive)"), whether each step is read-only, reversible or irreversible, the
point of no return (the first irreversible step), and each plugin's own plan for the
actions that support it. FILE is a runbook file or directory. With -json the plan is
one JSON document (unknown values are "(known after apply)", sensitive ones
"(sensitive)").

Exit status: 0 on success, 1 when the runbook or a variable has errors.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], vf.sources(), asJSON)
		},
	}
	addVarFlags(cmd, &vf)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as one JSON document")
	rootCmd.AddCommand(cmd)
}

func runPlan(ctx context.Context, stdout, stderr io.Writer, path string, vars lang.VarSources, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg, diags := lang.Load(path)
	if diags.HasErrors() {
		printDiags(stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	h, err := openHost(cfg, "", os.Stderr)
	if err != nil {
		return withCode(exitError, err)
	}
	defer h.Close()
	schemas := hostSchemas{h}
	diags = append(diags, cfg.Check(schemas)...)
	values, d := cfg.ResolveVariables(vars)
	diags = append(diags, d...)
	if diags.HasErrors() {
		printDiags(stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	p, d := cfg.Plan(ctx, lang.PlanOptions{
		Vars:    values,
		Schemas: schemas,
		Provider: func(ctx context.Context, name string) (sdk.Provider, error) {
			return h.Provider(ctx, name)
		},
	})
	diags = append(diags, d...)
	printDiags(stderr, cfg, diags)
	if diags.HasErrors() || p == nil {
		return withCode(exitError, nil)
	}
	if asJSON {
		return p.WriteJSON(stdout)
	}
	return p.WriteText(stdout)
}

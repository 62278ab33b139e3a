package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

func init() {
	var vf varFlags
	var asJSON bool
	var stateDir, format, diffBase string
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
			if err := checkPlanFormat(format); err != nil {
				return err
			}
			if format == planMarkdown || diffBase != "" {
				return runPlanMarkdown(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], vf.sources(), stateDir, diffBase)
			}
			return runPlan(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], vf.sources(), asJSON || format == planJSON, stateDir)
		},
	}
	addVarFlags(cmd, &vf)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as one JSON document")
	cmd.Flags().StringVar(&format, "format", planText, "text, json or markdown (a summary for a pull request; see docs/testing.md)")
	cmd.Flags().StringVar(&diffBase, "diff-base", "", "with -format markdown: also list the steps added, removed and changed since git REF")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", stateDirUsage+"; plugins are told it")
	rootCmd.AddCommand(cmd)
}

func runPlan(ctx context.Context, stdout, stderr io.Writer, path string, vars lang.VarSources, asJSON bool, stateDir string) error {
	return withPlan(ctx, stderr, path, vars, stateDir, func(_ *session.Runbook, p *lang.Plan) error {
		if asJSON {
			return p.WriteJSON(stdout)
		}
		return p.WriteText(stdout)
	})
}

// withPlan opens the runbook, plans it, prints its warnings and hands the
// plan to show; every -format of plan goes through it.
func withPlan(ctx context.Context, stderr io.Writer, path string, vars lang.VarSources, stateDir string, show func(*session.Runbook, *lang.Plan) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := session.New(session.Options{StateDir: stateDir, State: stateSpec, Stderr: stderr, Builtins: builtin.All()})
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.Close()
	rb, err := s.Open(vars, path)
	if err != nil {
		return reportErr(stderr, s, err)
	}
	defer rb.Close()
	p, err := rb.Plan(ctx)
	if err != nil {
		return reportErr(stderr, s, err)
	}
	printDiags(stderr, rb.Config, rb.Warnings)
	return show(rb, p)
}

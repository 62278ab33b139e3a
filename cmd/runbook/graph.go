package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/graph"
	"github.com/runbookdev/runbook/engine/lang"
)

func init() {
	var format string
	var rollback bool
	cmd := &cobra.Command{
		Use:   "graph [-format dot|mermaid] [-rollback] FILE",
		Short: "Print the step graph (or with -rollback the undo order) as DOT or Mermaid",
		Long: `Graph prints the runbook's steps and their dependencies, arrows in execution
order. With -rollback it prints the undo order instead: only steps with a rollback,
each undone after the steps that depended on it. Mermaid renders in reviewed pull
requests (wrap it in a mermaid code block); DOT renders with Graphviz.

Exit status: 0 on success, 1 when the runbook has errors.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGraph(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], format, rollback)
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "output format: dot or mermaid")
	cmd.Flags().BoolVar(&rollback, "rollback", false, "print the undo order instead of the execution order")
	rootCmd.AddCommand(cmd)
}

func runGraph(stdout, stderr io.Writer, path, format string, rollback bool) error {
	if format != "dot" && format != "mermaid" {
		return withCode(exitError, fmt.Errorf("unknown -format %q: use dot or mermaid", format))
	}
	cfg, diags := lang.Load(path)
	if diags.HasErrors() {
		printDiags(stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	return writeGraph(stdout, cfg, format, rollback)
}

func writeGraph(w io.Writer, cfg *lang.Config, format string, rollback bool) error {
	g := cfg.Graph()
	if rollback {
		// The executor's undo order (graph.Undo), not a copy of it.
		g = g.Undo(func(n string) bool { return cfg.Steps[n].Rollback != nil })
	}
	style := func(n string) graph.Style {
		s := cfg.Steps[n]
		label := n + "\n" + s.Plugin + "." + s.Action
		if s.ForEach != nil {
			label += "\n(for each)"
		}
		if rollback && s.Rollback != nil {
			if s.Rollback.Native {
				label += "\nundo: native"
			} else {
				label += "\nundo: " + s.Rollback.Plugin + "." + s.Rollback.Action
			}
		}
		return graph.Style{Label: label, Dashed: s.Always}
	}
	title := "runbook"
	if cfg.Runbook != nil {
		title = cfg.Runbook.Name
	}
	if rollback {
		title += " (rollback)"
	}
	if format == "mermaid" {
		return g.WriteMermaid(w, style)
	}
	return g.WriteDot(w, title, style)
}

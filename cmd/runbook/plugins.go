package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
)

func init() {
	pluginsCmd := &cobra.Command{
		Use:   "plugins",
		Short: "List plugins and show their schemas",
	}
	var lsJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List builtin plugins and the external plugins found in the search dirs",
		Long: `ls lists the builtin plugins and the external runbook-plugin-NAME executables found in
./.runbook/plugins and $XDG_DATA_HOME/runbook/plugins, with their versions and whether
.runbook.lock.hcl (in the current directory) pins them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPluginsLs(cmd.Context(), cmd.OutOrStdout(), lsJSON)
		},
	}
	ls.Flags().BoolVar(&lsJSON, "json", false, "print JSON")
	var schemaJSON bool
	schema := &cobra.Command{
		Use:   "schema NAME",
		Short: "Show a plugin's actions with their inputs, outputs and capabilities",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPluginsSchema(cmd.Context(), cmd.OutOrStdout(), args[0], schemaJSON)
		},
	}
	schema.Flags().BoolVar(&schemaJSON, "json", false, "print the schema as JSON")
	pluginsCmd.AddCommand(ls, schema)
	rootCmd.AddCommand(pluginsCmd)
}

func pluginsSession() (*session.Session, error) {
	return session.New(session.Options{Builtins: builtin.All(), Stderr: os.Stderr})
}

func runPluginsLs(ctx context.Context, w io.Writer, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := pluginsSession()
	if err != nil {
		return err
	}
	defer s.Close()
	rows, err := s.Plugins(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tACTIONS\tPATH\tSTATUS")
	for _, r := range rows {
		status := "ok"
		if r.Error != "" {
			status = r.Error
		}
		path := r.Path
		if path == "" {
			path = "-"
		} else if rel, err := filepath.Rel(".", path); err == nil && len(rel) < len(path) {
			path = rel
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, r.Kind, dash(r.Version), r.Actions, path, status)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runPluginsSchema(ctx context.Context, w io.Writer, name string, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	s, err := pluginsSession()
	if err != nil {
		return err
	}
	defer s.Close()
	ps, err := s.PluginSchema(ctx, name)
	if err != nil {
		return err
	}
	if asJSON {
		return view.WriteSchemaJSON(w, ps)
	}
	view.WriteSchemaMarkdown(w, ps)
	return nil
}

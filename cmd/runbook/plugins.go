package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
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

// cwdHost opens a host for the current directory (its lock file).
func cwdHost() (*pluginhost.Host, *pluginhost.LockFile, error) {
	lock, err := pluginhost.ReadLockFile(pluginhost.LockFileName)
	if err != nil {
		return nil, nil, err
	}
	return pluginhost.New(pluginhost.Options{Builtins: builtin.All(), Lock: lock, Stderr: os.Stderr}), lock, nil
}

type pluginRow struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // builtin | external
	Version string `json:"version,omitempty"`
	Path    string `json:"path,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Locked  bool   `json:"locked"`
	Actions int    `json:"actions"`
	Error   string `json:"error,omitempty"`
}

func runPluginsLs(ctx context.Context, w io.Writer, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	h, lock, err := cwdHost()
	if err != nil {
		return err
	}
	defer h.Close()
	external := h.Discover()
	var rows []pluginRow
	for _, name := range builtin.Names() {
		rows = append(rows, pluginRow{Name: name, Kind: "builtin", Locked: true})
	}
	for name, path := range external {
		if _, ok := builtin.Get(name); ok {
			continue // a builtin name always means the builtin
		}
		r := pluginRow{Name: name, Kind: "external", Path: path}
		r.SHA256, _ = pluginhost.FileSHA256(path)
		if lock != nil && lock.Plugins[name] != nil {
			r.Locked = lock.Plugins[name].SHA256 == r.SHA256
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	for i := range rows {
		r := &rows[i]
		if r.Kind == "external" && !r.Locked {
			r.Error = "not locked: run `runbook init`"
			continue
		}
		s, err := h.Schema(ctx, r.Name)
		if err != nil {
			r.Error = err.Error()
			continue
		}
		r.Version, r.Actions = s.Version, len(s.Actions)
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
	h, _, err := cwdHost()
	if err != nil {
		return err
	}
	defer h.Close()
	s, err := h.Schema(ctx, name)
	if err != nil {
		if e := sdk.Classify(err); e.Hint != "" {
			return fmt.Errorf("%w\nhint: %s", err, e.Hint)
		}
		return err
	}
	if asJSON {
		return view.WriteSchemaJSON(w, s)
	}
	view.WriteSchemaMarkdown(w, s)
	return nil
}

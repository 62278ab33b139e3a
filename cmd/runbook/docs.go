package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

func init() {
	var dir string
	cmd := &cobra.Command{
		Use:   "docs",
		Short: "Write docs/plugins/NAME.md for every builtin plugin from its schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDocs(cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", filepath.Join("docs", "plugins"), "output directory")
	rootCmd.AddCommand(cmd)
}

func runDocs(stdout io.Writer, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range builtin.Names() {
		p, _ := builtin.Get(name)
		var b strings.Builder
		view.WriteSchemaMarkdown(&b, sdk.SchemaOf(p))
		path := filepath.Join(dir, name+".md")
		old, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		page := view.MergeGenerated(string(old), b.String())
		if page == string(old) {
			continue
		}
		if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	return nil
}

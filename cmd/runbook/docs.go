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
		Long: `Docs writes a reference page per builtin plugin from its schema: into the
docs/plugins directory of the runbook source tree the current directory is in,
or into the directory given with -out. Elsewhere it writes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				var err error
				if dir, err = projectDocsDir(); err != nil {
					return withCode(exitError, err)
				}
			}
			return runDocs(cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "out", "", "output directory (default: docs/plugins of the runbook source tree)")
	rootCmd.AddCommand(cmd)
}

// projectDocsDir is docs/plugins of the runbook source tree holding the
// current directory: the nearest directory upwards with this module's
// go.mod.
func projectDocsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/runbookdev/runbook\n") {
			return filepath.Join(dir, "docs", "plugins"), nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("not inside the runbook source tree: pass -out DIR to say where the pages go")
		}
		dir = up
	}
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

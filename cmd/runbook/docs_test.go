package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// TestPluginDocsUpToDate fails when a builtin plugin's schema changed and
// docs/plugins was not regenerated with `make docs`.
func TestPluginDocsUpToDate(t *testing.T) {
	for _, name := range builtin.Names() {
		path := filepath.Join("..", "..", "docs", "plugins", name+".md")
		page, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run `make docs`)", path, err)
			continue
		}
		p, _ := builtin.Get(name)
		var b strings.Builder
		view.WriteSchemaMarkdown(&b, sdk.SchemaOf(p))
		if view.MergeGenerated(string(page), b.String()) != string(page) {
			t.Errorf("%s is out of date with the %s plugin's schema: run `make docs`", path, name)
		}
	}
}

// TestDocsStaysInTheProject: without -out, docs writes only into the source
// tree's docs/plugins, never into the working directory.
func TestDocsStaysInTheProject(t *testing.T) {
	dir, err := projectDocsDir()
	want, _ := filepath.Abs(filepath.Join("..", "..", "docs", "plugins"))
	if err != nil || dir != want {
		t.Fatalf("projectDocsDir = %q, %v; want %q", dir, err, want)
	}
	t.Chdir(t.TempDir())
	if dir, err := projectDocsDir(); err == nil {
		t.Fatalf("outside the source tree, projectDocsDir = %q", dir)
	}
}

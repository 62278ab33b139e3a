package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

func TestMergeGenerated(t *testing.T) {
	gen := "# ref\n"
	block := docsBegin + "\n" + gen + docsEnd + "\n"
	tests := []struct{ name, page, want string }{
		{"new page", "", block},
		{"hand-written page gets a section", "# couchdb\n\nprose\n", "# couchdb\n\nprose\n\n" + block},
		{"section replaced, prose kept", "intro\n\n" + docsBegin + "\nold\n" + docsEnd + "\n\noutro\n", "intro\n\n" + block + "\noutro\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeGenerated(tt.page, gen)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mergeGenerated (-want +got):\n%s", diff)
			}
			if again := mergeGenerated(got, gen); again != got {
				t.Errorf("not idempotent:\n%s", again)
			}
		})
	}
}

// TestPluginDocsUpToDate fails when a builtin plugin's schema changed and
// docs/plugins was not regenerated with `make docs`.
func TestPluginDocsUpToDate(t *testing.T) {
	for _, name := range builtin.Names() {
		if name == "ledger" { // test-only plugin (build tag runbooktest)
			continue
		}
		path := filepath.Join("..", "..", "docs", "plugins", name+".md")
		page, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run `make docs`)", path, err)
			continue
		}
		p, _ := builtin.Get(name)
		var b strings.Builder
		writeSchemaMarkdown(&b, sdk.SchemaOf(p))
		if mergeGenerated(string(page), b.String()) != string(page) {
			t.Errorf("%s is out of date with the %s plugin's schema: run `make docs`", path, name)
		}
	}
}

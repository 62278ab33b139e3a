package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/lang"
)

func TestOpenHost(t *testing.T) {
	dir := t.TempDir()
	src := `
plugin "ext" { source = "bin/runbook-plugin-ext" }
step "core.noop" "a" { with = { values = 1 } }
step "ext.do" "b" {
  with = {}
  rollback {
    action = other.undo
    with   = {}
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := lang.Load(dir)
	if cfg == nil {
		t.Fatal("no config")
	}
	if diff := cmp.Diff([]string{"core", "ext", "other"}, usedPlugins(cfg)); diff != "" {
		t.Fatalf("usedPlugins (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"ext": filepath.Join(dir, "bin", "runbook-plugin-ext")}, pluginSources(cfg, runbookDir(cfg))); diff != "" {
		t.Fatalf("pluginSources (-want +got):\n%s", diff)
	}
	h, err := openHost(cfg, filepath.Join(dir, ".runbook"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The source path is used (and the plugin is refused: not there).
	_, err = h.Provider(context.Background(), "ext")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bin", "runbook-plugin-ext")) {
		t.Fatalf("ext provider error = %v", err)
	}
	// A malformed lock file is an error.
	if err := os.WriteFile(filepath.Join(dir, ".runbook.lock.hcl"), []byte("plugin {"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openHost(cfg, "", io.Discard); err == nil {
		t.Fatal("openHost accepted a malformed lock file")
	}
}

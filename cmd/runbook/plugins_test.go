package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/core"
	"github.com/runbookdev/runbook/sdk"
)

func TestSchemaMarkdownAndJSON(t *testing.T) {
	s := sdk.SchemaOf(core.New())
	var md bytes.Buffer
	view.WriteSchemaMarkdown(&md, s)
	for _, want := range []string{
		"# `core` plugin reference",
		"| [`core.sleep`](#coresleep) | Waits for `duration` (e.g. \"30s\"), e.g. to let caches expire or DNS propagate. |",
		"## `core.file`",
		"Capabilities: idempotent, native undo (`rollback = native`), plan.",
		"| `command` | `string` | yes | Program to run, looked up in PATH. |",
		"| `args` | `list(string)` | no |",
		"step \"core.exec\" \"example\" {\n  with = {\n    command = \"...\"\n",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	var js bytes.Buffer
	if err := view.WriteSchemaJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FormatVersion string `json:"format_version"`
		Name          string
		Actions       []struct {
			Name   string
			Inputs []struct{ Type json.RawMessage }
		}
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.FormatVersion != "1" || got.Name != "core" || len(got.Actions) != len(s.Actions) {
		t.Fatalf("json = %+v", got)
	}
	for _, a := range got.Actions {
		if a.Name != "exec" {
			continue
		}
		var typ bytes.Buffer
		if len(a.Inputs) != 7 || json.Compact(&typ, a.Inputs[1].Type) != nil || typ.String() != `["list","string"]` {
			t.Fatalf("exec inputs = %+v", a.Inputs)
		}
	}
}

func TestDocsWritesEveryBuiltin(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := runDocs(&out, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "core.md"))
	if err != nil || !strings.Contains(string(b), "## `core.approve`") {
		t.Fatalf("core.md: %v\n%s", err, b)
	}
}

func TestInitWithoutExternalPlugins(t *testing.T) {
	dir := t.TempDir()
	src := "step \"core.noop\" \"a\" {\n  with = { values = 1 }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runInit(context.Background(), &stdout, &stderr, dir, false); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	lf, err := pluginhost.ReadLockFile(filepath.Join(dir, pluginhost.LockFileName))
	if err != nil || lf == nil || len(lf.Plugins) != 0 {
		t.Fatalf("lock file = %+v, %v", lf, err)
	}
	// A step of an external plugin that is not installed is reported.
	src += "step \"hello.greet\" \"b\" {\n  with = { name = \"x\" }\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	err = runInit(context.Background(), &stdout, &stderr, dir, false)
	if err == nil || !strings.Contains(err.Error(), "runbook-plugin-hello not found") {
		t.Fatalf("init with a missing plugin = %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
)

// TestPlanMarkdownDiffBase: -diff-base compares the runbook with the
// version committed at a git ref.
func TestPlanMarkdownDiffBase(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.test", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	file := filepath.Join(dir, "main.hcl")
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("step \"core.noop\" \"keep\" {\n  with = { values = 1 }\n}\n\nstep \"core.noop\" \"old\" {\n  with = {}\n}\n")
	git("init", "-q")
	git("add", "main.hcl")
	git("commit", "-q", "-m", "base")
	write("step \"core.noop\" \"keep\" {\n  with = { values = 2 }\n}\n\nstep \"core.noop\" \"fresh\" {\n  with     = {}\n  rollback = native\n}\n")
	var stdout, stderr bytes.Buffer
	if err := runPlanMarkdown(context.Background(), &stdout, &stderr, file, lang.VarSources{}, t.TempDir(), "HEAD"); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	for _, want := range []string{"### Changes since `HEAD`", "- Added: `fresh`", "- Removed: `old`", "- Changed: `keep` (inputs: values)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("missing %q in\n%s", want, stdout.String())
		}
	}
	err := runPlanMarkdown(context.Background(), &stdout, &stderr, file, lang.VarSources{}, t.TempDir(), "no-such-ref")
	if err == nil || !strings.Contains(err.Error(), "git show no-such-ref:") {
		t.Errorf("unknown ref: %v", err)
	}
}

func TestPlanFormatChecked(t *testing.T) {
	for _, f := range []string{planText, planJSON, planMarkdown} {
		if err := checkPlanFormat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := checkPlanFormat("yaml"); err == nil || !strings.Contains(err.Error(), `not "yaml"`) {
		t.Errorf("yaml: %v", err)
	}
}

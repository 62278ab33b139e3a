package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/lang"
)

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func langUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func langGolden(t *testing.T, path, got string) {
	t.Helper()
	if langUpdating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func langExitCode(err error) int {
	if err == nil {
		return 0
	}
	if ce, ok := err.(*exitCodeError); ok {
		return ce.code
	}
	return -1
}

func TestFmt(t *testing.T) {
	src, err := os.ReadFile("testdata/fmt/messy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "messy.hcl")
	os.WriteFile(file, src, 0o640)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	subFile := filepath.Join(dir, "sub", "nested.hcl")
	os.WriteFile(subFile, src, 0o644)

	// -check: lists the file, changes nothing, exit 3.
	var out, errb bytes.Buffer
	err = runFmt(nil, &out, &errb, []string{dir}, fmtOptions{check: true})
	if langExitCode(err) != exitFmtCheck || out.String() != file+"\n" {
		t.Errorf("-check: code %d, out %q", langExitCode(err), out.String())
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, src) {
		t.Error("-check rewrote the file")
	}

	// -diff -check: a unified diff.
	out.Reset()
	runFmt(nil, &out, &errb, []string{file}, fmtOptions{check: true, diff: true})
	langGolden(t, "testdata/fmt/messy.diff", strings.ReplaceAll(out.String(), dir, "DIR"))

	// Rewrite, keeping the mode; non-recursive leaves sub/ alone.
	out.Reset()
	if err := runFmt(nil, &out, &errb, []string{dir}, fmtOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	langGolden(t, "testdata/fmt/messy.golden", string(got))
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", st.Mode())
	}
	if b, _ := os.ReadFile(subFile); !bytes.Equal(b, src) {
		t.Error("non-recursive fmt touched a subdirectory")
	}
	// -recursive reaches it; a second run changes nothing.
	out.Reset()
	runFmt(nil, &out, &errb, []string{dir}, fmtOptions{recursive: true})
	if out.String() != subFile+"\n" {
		t.Errorf("-recursive printed %q", out.String())
	}
	out.Reset()
	if err := runFmt(nil, &out, &errb, []string{dir}, fmtOptions{recursive: true, check: true}); err != nil || out.Len() != 0 {
		t.Errorf("formatted tree not clean: %v %q", err, out.String())
	}

	// stdin to stdout.
	out.Reset()
	if err := runFmt(bytes.NewReader(src), &out, &errb, []string{"-"}, fmtOptions{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != string(got) {
		t.Errorf("stdin output differs from file output")
	}

	// A syntax error: reported with its position, file untouched, exit 1.
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("step \"a\" {\n  with = \n"), 0o644)
	out.Reset()
	errb.Reset()
	err = runFmt(nil, &out, &errb, []string{bad}, fmtOptions{})
	if langExitCode(err) != exitError || !strings.Contains(errb.String(), "bad.hcl:") {
		t.Errorf("syntax error: code %d, stderr %q", langExitCode(err), errb.String())
	}
	// A missing path: exit 1.
	if err := runFmt(nil, &out, &errb, []string{filepath.Join(dir, "nope")}, fmtOptions{}); langExitCode(err) != exitError {
		t.Errorf("missing path: %v", err)
	}
}

func TestUnifiedDiff(t *testing.T) {
	if unifiedDiff("f", "a\n", "a\n") != "" {
		t.Error("equal inputs gave a diff")
	}
	got := unifiedDiff("f", "a\nb\nc\n", "a\nB\nc\nd\n")
	want := "--- f\n+++ f (formatted)\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n"
	if got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
}

func TestGraphGolden(t *testing.T) {
	cfg, diags := lang.Load("testdata/graph/graph.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, tc := range []struct {
		format   string
		rollback bool
		golden   string
	}{
		{"dot", false, "graph.dot"},
		{"mermaid", false, "graph.mmd"},
		{"dot", true, "rollback.dot"},
		{"mermaid", true, "rollback.mmd"},
	} {
		var b bytes.Buffer
		if err := writeGraph(&b, cfg, tc.format, tc.rollback); err != nil {
			t.Fatal(err)
		}
		langGolden(t, filepath.Join("testdata/graph", tc.golden), b.String())
	}
	var out, errb bytes.Buffer
	if err := runGraph(&out, &errb, "testdata/graph/graph.hcl", "svg", false); langExitCode(err) != exitError {
		t.Errorf("bad format: %v", err)
	}
	if err := runGraph(&out, &errb, "testdata/graph/missing.hcl", "dot", false); langExitCode(err) != exitError {
		t.Errorf("missing file: %v", err)
	}
}

func TestSingleDashLongFlags(t *testing.T) {
	got := singleDashLongFlags([]string{"plan", "-var", "a=-b", "-var-file=x.hcl", "-json", "-h", "--check", "--", "-var"})
	want := []string{"plan", "--var", "a=-b", "--var-file=x.hcl", "--json", "-h", "--check", "--", "-var"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestVarFlags(t *testing.T) {
	var vf varFlags
	cmd := rootCmd
	_ = cmd
	vf.vars = []string{"a=1"}
	vf.files = []string{"f.hcl"}
	src := vf.sources()
	if len(src.Args) != 1 || len(src.Files) != 1 || len(src.Env) == 0 {
		t.Errorf("sources: %+v", src)
	}
}

func TestVersionText(t *testing.T) {
	got := versionText()
	for _, want := range []string{"runbook " + version + "\n", "\ncommit ", "\nplugin protocol 1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("version text lacks %q:\n%s", want, got)
		}
	}
}

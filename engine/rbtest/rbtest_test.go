package rbtest_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/rbtest"
)

func load(t *testing.T, path string, w *world) *rbtest.Suite {
	t.Helper()
	s, err := rbtest.Load(path, rbtest.Options{Builtins: builtins{w}})
	if err != nil {
		var de *rbtest.DiagError
		if errors.As(err, &de) {
			t.Fatalf("load %s: %s", path, de.Diags.Error())
		}
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestGoodFilePasses(t *testing.T) {
	w := &world{names: map[string]bool{}}
	s := load(t, "testdata/good/main.runbooktest.hcl", w)
	res := s.Run(context.Background())
	var names []string
	for _, r := range res {
		names = append(names, r.Name)
		if !r.Passed() {
			t.Errorf("%s failed: %s %v\n%s", r.Name, r.Error, r.Failures, strings.Join(r.Lines, "\n"))
		}
	}
	if got := strings.Join(names, " "); got != "run.happy run.c_fails run.checkpoints sweep.fail sweep.crash" {
		t.Errorf("tests = %s", got)
	}
	// The real (unmocked) puts of the crash sweep's last row were all
	// undone: the plugin's world is empty again.
	if n := w.len(); n != 0 {
		t.Errorf("%d names left after the sweeps: %v", n, w.names)
	}
	if rows := res[3].Rows; len(rows) != 8 || rows[0].Step != rbtest.NoFailure {
		t.Errorf("fail sweep rows = %+v, want 8 (rollback after success, a, check, b[x], b[y], note, c, cleanup)", rows)
	}
}

func TestBrokenRollbackFailsTheSweep(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"testdata/broken/undo_fails.runbooktest.hcl", `failure at step c: the undo of step b["y"] failed: conflict: someone changed it since`},
		{"testdata/broken/norollback.runbooktest.hcl", "failure at step last: step second (demo.put) has no rollback, so what it did stays, though its action can undo it: add `rollback = native`"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			w := &world{names: map[string]bool{}}
			res := load(t, tc.file, w).Run(context.Background())
			if len(res) != 1 || res[0].Passed() {
				t.Fatalf("results = %+v, want one failed sweep", res)
			}
			if !contains(res[0].Failures, tc.want) {
				t.Errorf("failures:\n%s\nwant the line:\n%s", strings.Join(res[0].Failures, "\n"), tc.want)
			}
			if !strings.Contains(strings.Join(res[0].Lines, "\n"), "FAIL") {
				t.Errorf("the table shows no FAIL:\n%s", strings.Join(res[0].Lines, "\n"))
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestMistakesAreDiagnosed(t *testing.T) {
	_, err := rbtest.Load("testdata/broken/mistakes.runbooktest.hcl", rbtest.Options{Builtins: builtins{&world{names: map[string]bool{}}}})
	var de *rbtest.DiagError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want diagnostics", err)
	}
	var got []string
	for _, d := range de.Diags {
		line := d.Summary
		if d.Subject != nil {
			line = d.Subject.Filename[strings.LastIndex(d.Subject.Filename, "/")+1:] + ":" + itoa(d.Subject.Start.Line) + ": " + d.Summary
		}
		got = append(got, line)
	}
	for _, want := range []string{
		"mistakes.runbooktest.hcl:2: Unknown variable",
		"mistakes.runbooktest.hcl:4: Unknown step in mock",
		"mistakes.runbooktest.hcl:6: Invalid mock outputs",
		"mistakes.runbooktest.hcl:9: Unknown action in mock",
		"mistakes.runbooktest.hcl:11: Invalid mock label",
		"mistakes.runbooktest.hcl:14: Invalid expect",
		"mistakes.runbooktest.hcl:16: Unknown error kind",
		"mistakes.runbooktest.hcl:20: Duplicate run block",
	} {
		if !contains(got, want) {
			t.Errorf("missing %q in\n%s", want, strings.Join(got, "\n"))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestTimeout(t *testing.T) {
	start := time.Now()
	res := load(t, "testdata/broken/slow.runbooktest.hcl", &world{names: map[string]bool{}}).Run(context.Background())
	if len(res) != 1 || res[0].Error != "timed out after 300ms" {
		t.Fatalf("results = %+v", res[0])
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

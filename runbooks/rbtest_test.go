package runbooks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/rbtest"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// TestRunbookTestFiles runs every *.runbooktest.hcl and *.runbooktest.json
// here as `runbook test -sweep=all` does: each file's run blocks, a
// failure sweep and a crash sweep, with the builtin plugins in-process.
func TestRunbookTestFiles(t *testing.T) {
	paths, err := rbtest.Find(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no test files")
	}
	opts := rbtest.Options{Builtins: builtin.All(), Timeout: 2 * time.Minute}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			fr := rbtest.RunFile(context.Background(), p, opts, []string{rbtest.SweepFail, rbtest.SweepCrash})
			if fr.Err != nil || fr.Diags.HasErrors() {
				t.Fatalf("%v%s", fr.Err, fr.DiagText())
			}
			for _, r := range fr.Results {
				if !r.Passed() {
					t.Errorf("%s failed: %s\n%s\n%s", r.Name, r.Error, strings.Join(r.Failures, "\n"), strings.Join(r.Lines, "\n"))
				}
			}
			if len(fr.Results) < 3 {
				t.Errorf("%d tests, want at least one run block and both sweeps", len(fr.Results))
			}
		})
	}
}

// TestEveryRunbookHasATestFile: each shipped runbook and example has a test
// file beside it.
func TestEveryRunbookHasATestFile(t *testing.T) {
	for _, dir := range []string{".", "examples"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() || !lang.IsRunbookFile(name) {
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(name, ".runbook.json"), ".hcl")
			_, errH := os.Stat(filepath.Join(dir, base+rbtest.SuffixHCL))
			_, errJ := os.Stat(filepath.Join(dir, base+rbtest.SuffixJSON))
			if errH != nil && errJ != nil {
				t.Errorf("%s has no test file (%s)", filepath.Join(dir, name), base+rbtest.SuffixHCL)
			}
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/rbtest"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// Exit codes of `runbook test`, as `go test` has them.
const (
	exitTestFailed = 1 // some test failed
	exitTestUsage  = 2 // bad usage, or a test file or its runbook has errors
)

type testFlags struct {
	sweep    string
	json     bool
	junit    string
	parallel int
	timeout  time.Duration
	run      string
}

func init() {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test [FILE|DIR]...",
		Short: "Run runbook test files: apply runbooks against mocks and prove every rollback path",
		Long: `Test runs the test files (*.runbooktest.hcl, *.runbooktest.json) named, or found
under the directories named (default: the working directory). Each test file sits
beside the runbook it tests and gives variables, mocks standing in for plugin actions
(steps not mocked run their real plugin) and run blocks that apply the runbook and
assert on outputs, step states, the undo order and the events seen. Runs are
in-process, journaled in a temporary directory.

With -sweep, each file also gets a failure sweep: the runbook is applied once per
step, failing that step, and each time every completed reversible step must be undone
in reverse dependency order, always steps must run, and the recorded effects must net
to nothing but those of irreversible steps (reported). -sweep=crash instead crashes the
engine at each step, resumes the run from its journal and rolls it back. A file may ask
for its sweeps itself (sweep = "fail"). See docs/testing.md.

Exit status: 0 when every test passed, 1 when a test failed, 2 on bad usage or when a
test file or its runbook has errors.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTests(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args, f)
		},
	}
	cmd.Flags().StringVar(&f.sweep, "sweep", "", `also run a failure sweep on every file: "fail" (the default of a bare -sweep), "crash" or "all"`)
	cmd.Flags().Lookup("sweep").NoOptDefVal = rbtest.SweepFail
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON test event per line (shaped like go test -json)")
	cmd.Flags().StringVar(&f.junit, "junit", "", "also write the results as JUnit XML to FILE")
	cmd.Flags().IntVar(&f.parallel, "parallel", 4, "run up to N test files at once")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 5*time.Minute, "fail a test (a run block or a sweep) that takes longer (0: no limit)")
	cmd.Flags().StringVar(&f.run, "run", "", "run only the tests whose name (run.NAME, sweep.fail, sweep.crash) matches this regular expression")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitTestUsage, err) })
	rootCmd.AddCommand(cmd)
}

func sweepModes(s string) ([]string, error) {
	switch s {
	case "":
		return nil, nil
	case rbtest.SweepFail, rbtest.SweepCrash:
		return []string{s}, nil
	case "all":
		return []string{rbtest.SweepFail, rbtest.SweepCrash}, nil
	}
	return nil, fmt.Errorf("-sweep is fail, crash or all, not %q", s)
}

func runTests(ctx context.Context, stdout, stderr io.Writer, args []string, f testFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C stops the tests; their temporary directories are removed.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	sweeps, err := sweepModes(f.sweep)
	if err != nil {
		return withCode(exitTestUsage, err)
	}
	paths, err := rbtest.Find(args...)
	if err != nil {
		return withCode(exitTestUsage, err)
	}
	if len(paths) == 0 {
		return withCode(exitTestUsage, fmt.Errorf("no test files (*%s, *%s) found", rbtest.SuffixHCL, rbtest.SuffixJSON))
	}
	start := time.Now()
	opts := rbtest.Options{Builtins: builtin.All(), Timeout: f.timeout}
	if f.run != "" {
		re, err := regexp.Compile(f.run)
		if err != nil {
			return withCode(exitTestUsage, fmt.Errorf("-run: %w", err))
		}
		opts.Match = re.MatchString
	}
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	if f.json {
		opts.OnEvent = func(ev rbtest.Event) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(ev)
		}
	}
	results := rbtest.RunFiles(ctx, paths, f.parallel, opts, sweeps, func(fr *rbtest.FileResult) {
		if f.json {
			if !fr.Passed() && fr.Results == nil {
				mu.Lock()
				_ = enc.Encode(rbtest.Event{Time: time.Now().UTC(), Action: "fail", File: fr.Path, Output: loadError(fr)})
				mu.Unlock()
			}
			return
		}
		printFileResult(stdout, stderr, fr)
	})
	if f.junit != "" {
		if err := writeJUnit(f.junit, results, start); err != nil {
			return withCode(exitTestUsage, err)
		}
	}
	code, failed, tests := exitOK, 0, 0
	for _, fr := range results {
		tests += len(fr.Results)
		if fr.Results == nil && !fr.Passed() {
			code = exitTestUsage
			continue
		}
		for _, r := range fr.Results {
			if !r.Passed() {
				failed++
			}
		}
	}
	if failed > 0 && code == exitOK {
		code = exitTestFailed
	}
	if !f.json {
		verdict := "PASS"
		if code != exitOK {
			verdict = "FAIL"
		}
		fmt.Fprintf(stdout, "%s: %d test files, %d tests, %d failed (%.2fs)\n", verdict, len(results), tests, failed, time.Since(start).Seconds())
	}
	if code != exitOK {
		return withCode(code, nil)
	}
	return nil
}

// loadError is why a file did not run.
func loadError(fr *rbtest.FileResult) string {
	if fr.Err != nil {
		return fr.Err.Error()
	}
	return fr.DiagText()
}

// printFileResult prints one file's tests as `go test -v` does: a line per
// test, its report indented, then the file's verdict.
func printFileResult(stdout, stderr io.Writer, fr *rbtest.FileResult) {
	if fr.Results == nil && !fr.Passed() {
		fmt.Fprint(stderr, loadError(fr))
		fmt.Fprintf(stdout, "FAIL  %s  (does not load)\n", fr.Path)
		return
	}
	for _, r := range fr.Results {
		v := "PASS"
		if !r.Passed() {
			v = "FAIL"
		}
		fmt.Fprintf(stdout, "--- %s: %s %s (%.2fs)\n", v, fr.Path, r.Name, r.Duration.Seconds())
		for _, l := range r.Lines {
			fmt.Fprintf(stdout, "    %s\n", l)
		}
		for _, l := range r.Failures {
			fmt.Fprintf(stdout, "    FAIL: %s\n", l)
		}
		if r.Error != "" {
			fmt.Fprintf(stdout, "    ERROR: %s\n", r.Error)
		}
	}
	v := "ok  "
	if !fr.Passed() {
		v = "FAIL"
	}
	fmt.Fprintf(stdout, "%s  %s  %.2fs\n", v, fr.Path, fr.Duration.Seconds())
}

func writeJUnit(path string, results []*rbtest.FileResult, start time.Time) error {
	var b strings.Builder
	if err := rbtest.WriteJUnit(&b, results, start); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

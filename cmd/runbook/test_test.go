package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/rbtest"
)

// runTestCmd runs `runbook test` and returns its exit code and output.
func runTestCmd(t *testing.T, f testFlags, args ...string) (int, string, string) {
	t.Helper()
	if f.parallel == 0 {
		f.parallel = 2
	}
	if f.timeout == 0 {
		f.timeout = time.Minute
	}
	var stdout, stderr bytes.Buffer
	err := runTests(context.Background(), &stdout, &stderr, args, f)
	code := exitOK
	var ce *exitCodeError
	if errors.As(err, &ce) {
		code = ce.code
		if ce.err != nil {
			stderr.WriteString(ce.err.Error())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestTestCommandExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags testFlags
		args  []string
		code  int
		want  string
	}{
		{"passes", testFlags{}, []string{"testdata/rbtest/good"}, 0, "ok    testdata/rbtest/good/notes.runbooktest.hcl"},
		{"sweep table", testFlags{sweep: "all"}, []string{"testdata/rbtest/good"}, 0, "CRASHED AT"},
		{"missing rollback", testFlags{}, []string{"testdata/rbtest/broken/notes.runbooktest.hcl"}, 1,
			"FAIL: failure at step last: step second (core.file) has no rollback, so what it did stays, though its action can undo it: add `rollback = native`"},
		{"not restored", testFlags{}, []string{"testdata/rbtest/leak"}, 1,
			"FAIL: failure at step done: not restored: testdata/rbtest/leak/leak.runbooktest.hcl:5: a file survived the rollback"},
		{"diagnostics", testFlags{}, []string{"testdata/rbtest/broken"}, 2, "typo.runbooktest.hcl:2:13: Error: Unknown variable"},
		{"unmocked approval", testFlags{}, []string{"testdata/rbtest/approve"}, 2,
			`gate.hcl:1:1: Error: Approval not mocked`},
		{"only matching tests", testFlags{run: "^sweep"}, []string{"testdata/rbtest/good"}, 0, "PASS: 1 test files, 1 tests, 0 failed"},
		{"bad -run", testFlags{run: "("}, []string{"testdata/rbtest/good"}, 2, "-run: error parsing regexp"},
		{"no test files", testFlags{}, []string{"testdata/graph"}, 2, "no test files"},
		{"bad sweep", testFlags{sweep: "sometimes"}, []string{"testdata/rbtest/good"}, 2, "-sweep is fail, crash or all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runTestCmd(t, tc.flags, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d); want %q in\n%s\n%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

func TestTestCommandJSONAndJUnit(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, out, errOut := runTestCmd(t, testFlags{json: true, junit: junit, sweep: "fail"}, "testdata/rbtest/good", "testdata/rbtest/broken/notes.runbooktest.hcl")
	if code != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	ends := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev rbtest.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not a JSON event: %q", sc.Text())
		}
		if ev.Action == "pass" || ev.Action == "fail" {
			ends[filepath.Base(filepath.Dir(ev.File))+" "+ev.Test] = ev.Action
		}
	}
	want := map[string]string{"good run.writes": "pass", "good sweep.fail": "pass", "broken sweep.fail": "fail"}
	for k, v := range want {
		if ends[k] != v {
			t.Errorf("%s: %q, want %q (events: %v)", k, ends[k], v, ends)
		}
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `<testsuites name="runbook test" tests="3" failures="1" errors="0"`) {
		t.Errorf("junit:\n%s", b)
	}
}

// TestTestCommandKeepsSecrets: a sensitive variable appears in no output
// of a failing test file (plain, -json, JUnit), not even through an
// assertion's error message.
func TestTestCommandKeepsSecrets(t *testing.T) {
	const canary = "canary-s3cr3t-7731"
	junit := filepath.Join(t.TempDir(), "junit.xml")
	for _, f := range []testFlags{{}, {json: true, junit: junit}} {
		code, out, errOut := runTestCmd(t, f, "testdata/rbtest/secret")
		if code != 1 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, canary) {
			t.Errorf("the secret leaked:\n%s\n%s", out, errOut)
		}
		if !f.json && !strings.Contains(out, "(the error message is sensitive)") {
			t.Errorf("no sensitive message:\n%s", out)
		}
	}
	if b, _ := os.ReadFile(junit); len(b) == 0 || strings.Contains(string(b), canary) {
		t.Errorf("junit leaked the secret or is empty:\n%s", b)
	}
}

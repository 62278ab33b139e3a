package rbtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

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
	if got := strings.Join(names, " "); got != "run.happy run.c_fails sweep.fail sweep.crash" {
		t.Errorf("tests = %s", got)
	}
	// The sweep leaves nothing behind; the happy run left its effects.
	t.Log(strings.Join(res[2].Lines, "\n"))
	t.Log(strings.Join(res[3].Lines, "\n"))
	if n := len(res[2].Rows); n != 7 {
		t.Errorf("fail sweep rows = %d, want 7 (a, check, b[x], b[y], note, c, cleanup)", n)
	}
}

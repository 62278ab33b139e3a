package session

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// selfExe is a runbook binary built for the tests: builtin plugins are
// that binary started again in plugin mode.
var selfExe string

func TestMain(m *testing.M) { os.Exit(testenv.RunMainWithRunbook(m, &selfExe)) }

// newSession is a session over dir's state with the test binary's
// builtins, recording events.
// Its environment names no config directory: no state key is made.
func newSession(t *testing.T, dir string, rec *event.Recorder) *Session {
	return newSessionEnv(t, dir, rec, nil)
}

// newSessionEnv is newSession with environment variables.
func newSessionEnv(t *testing.T, dir string, rec *event.Recorder, env map[string]string) *Session {
	t.Helper()
	var sink event.Sink = event.Discard
	if rec != nil {
		sink = rec
	}
	s, err := New(Options{
		StateDir: filepath.Join(dir, ".runbook"), Sink: sink,
		Builtins: builtin.All(),
		Getenv: func(k string) string {
			if k == "RUNBOOK_SELF_EXE" {
				return selfExe
			}
			return env[k]
		},
	})
	if err != nil {
		fatal(t, err)
	}
	t.Cleanup(s.Close)
	return s
}

func write(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fatal fails the test with err and, for a *DiagError, its diagnostics.
func fatal(t *testing.T, err error) {
	t.Helper()
	var de *DiagError
	if errors.As(err, &de) {
		t.Fatalf("%v: %v", err, de.Diags)
	}
	t.Fatal(err)
}

func vars(args ...string) lang.VarSources { return lang.VarSources{Args: args} }

func TestOpenCollectsEveryDiagnostic(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), `
step "core.noop" "a" { with = { bogus = 1 } }
step "core.nosuch" "b" { with = {} }
`)
	s := newSession(t, dir, nil)
	_, err := s.Open(vars(), dir)
	var de *DiagError
	if !errors.As(err, &de) {
		t.Fatalf("Open error = %v, want a *DiagError", err)
	}
	var got []string
	for _, d := range de.Diags {
		got = append(got, d.Subject.Filename[len(dir)+1:]+": "+d.Summary)
	}
	if len(got) < 2 {
		t.Fatalf("want both mistakes reported, got %q", got)
	}
}

const fileRunbook = `
runbook "files" { lock = "files" }
variable "dir" { type = string }
variable "fail" {
  type    = string
  default = ""
}
step "core.file" "conf" {
  with     = { path = "${var.dir}/conf", content = "v1" }
  rollback = native
}
step "core.noop" "check" {
  with       = { fail = var.fail }
  on_failure = "POLICY"
  depends_on = [step.conf]
}
`

func TestApplyThenRollbackLater(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), strings.ReplaceAll(fileRunbook, "POLICY", "rollback"))
	rec := &event.Recorder{}
	s := newSession(t, dir, rec)
	rb, err := s.Open(vars("dir="+dir), filepath.Join(dir, "main.hcl"))
	if err != nil {
		fatal(t, err)
	}
	out, err := rb.Apply(context.Background(), nil)
	rb.Close()
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunSucceeded {
		t.Fatalf("state = %s (%v)", out.Result.State, out.Result.Err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "conf")); string(b) != "v1" {
		t.Fatalf("conf = %q", b)
	}
	var types []event.Type
	for _, e := range rec.Events() {
		if e.Type == event.RunStarted || e.Type == event.RunFinished {
			types = append(types, e.Type)
		}
	}
	if diff := cmp.Diff([]event.Type{event.RunStarted, event.RunFinished}, types); diff != "" {
		t.Errorf("run events (-want +got):\n%s", diff)
	}
	if c := out.Continue(); c.Resume != "" || !strings.Contains(c.Rollback, "runbook rollback -state-dir") {
		t.Errorf("continue = %+v", c)
	}

	runs, err := s.Runs()
	if err != nil || len(runs) != 1 || runs[0].State.Meta.ID != out.RunID || runs[0].State.State != journal.RunSucceeded {
		t.Fatalf("Runs = %v, %v", runs, err)
	}
	if m := runs[0].State.Meta; m.Lock != "files" || len(m.Files) != 1 || len(m.Plugins) != 1 {
		t.Errorf("run meta = %+v", m)
	}

	back, err := s.Rollback(context.Background(), "", vars(), RollbackOptions{})
	if err != nil {
		fatal(t, err)
	}
	if back.Result.State != journal.RunRolledBack {
		t.Fatalf("rollback state = %s (%v)", back.Result.State, back.Result.Err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf")); !os.IsNotExist(err) {
		t.Fatalf("conf still there after rollback: %v", err)
	}
	again, err := s.Rollback(context.Background(), out.RunID[:10], vars(), RollbackOptions{})
	if err != nil || !again.AlreadyRolledBack {
		t.Fatalf("second rollback = %+v, %v", again, err)
	}
}

// applier applies the runbook main with dir and the given -var arguments.
func applier(t *testing.T, s *Session, dir, main string) func(args ...string) (*Outcome, error) {
	return func(args ...string) (*Outcome, error) {
		rb, err := s.Open(vars(append([]string{"dir=" + dir}, args...)...), main)
		if err != nil {
			fatal(t, err)
		}
		defer rb.Close()
		return rb.Apply(context.Background(), nil)
	}
}

func TestAbortKeepsTheLockUntilResumed(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, strings.ReplaceAll(fileRunbook, "POLICY", "abort"))
	s := newSession(t, dir, nil)
	apply := applier(t, s, dir, main)
	out, err := apply("fail=boom")
	if err != nil {
		fatal(t, err)
	}
	if out.Result.State != journal.RunAborted {
		t.Fatalf("state = %s", out.Result.State)
	}
	if c := out.Continue(); c.Resume == "" || c.Rollback == "" {
		t.Errorf("an aborted run can be resumed or rolled back: %+v", c)
	}
	// The lock stays with the aborted run: a new run is refused, naming it.
	_, err = apply()
	var le *journal.LockedError
	if !errors.As(err, &le) || le.Holder.RunID != out.RunID {
		t.Fatalf("second apply error = %v, want the lock held by %s", err, out.RunID)
	}
	// Resume it with the failure fixed: it finishes and frees the lock.
	res, err := s.Resume(context.Background(), "", vars("fail="))
	if err != nil {
		fatal(t, err)
	}
	if res.Result.State != journal.RunSucceeded || res.RunID != out.RunID {
		t.Fatalf("resume = %s of %s", res.Result.State, res.RunID)
	}
	if _, err := apply(); err != nil {
		t.Fatalf("apply after the resumed run finished: %v", err)
	}
	if _, err := s.Resume(context.Background(), out.RunID, vars()); err == nil || !strings.Contains(err.Error(), "nothing to resume") {
		t.Fatalf("resume of a finished run: %v", err)
	}
}

func TestConfirmRefused(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, strings.ReplaceAll(fileRunbook, "POLICY", "rollback"))
	s := newSession(t, dir, nil)
	rb, err := s.Open(vars("dir="+dir), main)
	if err != nil {
		fatal(t, err)
	}
	defer rb.Close()
	var planned int
	_, err = rb.Apply(context.Background(), func(p *lang.Plan) (bool, error) { planned++; return false, nil })
	if !errors.Is(err, ErrCancelled) || planned != 1 {
		t.Fatalf("Apply = %v after %d plans", err, planned)
	}
	if runs, _ := s.Runs(); len(runs) != 0 {
		t.Fatalf("a refused apply journaled %d runs", len(runs))
	}
	if _, err := os.Stat(filepath.Join(dir, "conf")); !os.IsNotExist(err) {
		t.Fatal("a refused apply wrote the file")
	}
}

func TestCorruptRunIsListedAndNamedInEveryRefusal(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	write(t, main, strings.ReplaceAll(fileRunbook, "POLICY", "abort"))
	s := newSession(t, dir, nil)
	apply := applier(t, s, dir, main)
	out, err := apply("fail=boom")
	if err != nil || out.Result.State != journal.RunAborted {
		t.Fatalf("apply = %v, %v", out, err)
	}
	// Damage a record in the middle of the journal.
	path := filepath.Join(out.Journal, "journal.ndjson")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) < 4 {
		t.Fatalf("journal has %d lines", len(lines))
	}
	lines[1] = strings.Repeat("#", len(lines[1])-1) + "\n"
	write(t, path, strings.Join(lines, ""))

	runs, err := s.Runs()
	if err != nil || len(runs) != 1 || runs[0].State.State != journal.RunCorrupt {
		t.Fatalf("Runs = %+v, %v; want the corrupt run listed", runs, err)
	}
	for name, try := range map[string]func() error{
		"apply":    func() error { _, err := apply(); return err },
		"resume":   func() error { _, err := s.Resume(context.Background(), "", vars()); return err },
		"rollback": func() error { _, err := s.Rollback(context.Background(), "", vars(), RollbackOptions{}); return err },
	} {
		err := try()
		if err == nil || !strings.Contains(err.Error(), out.RunID) {
			t.Errorf("%s = %v; want a refusal naming %s", name, err, out.RunID)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "conf")); err != nil {
		t.Errorf("a refused command touched the step's file: %v", err)
	}
}

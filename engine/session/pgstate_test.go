package session

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// migratedDB is a fresh database with the state schema.
func migratedDB(t *testing.T) string {
	t.Helper()
	url := testenv.Postgres(t)
	if _, err := journal.Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	return url
}

// machine is a session as on another machine: its own state directory,
// the shared database.
func machine(t *testing.T, dbURL string, env map[string]string) *Session {
	t.Helper()
	s, err := New(Options{
		StateDir: filepath.Join(t.TempDir(), ".runbook"), State: dbURL, Sink: &event.Recorder{},
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

// Two machines (two state directories, one database) apply runbooks with
// the same lock key at once: exactly one runs, the other is refused
// naming it; once it has finished, the key is free.
func TestTwoMachinesOneLock(t *testing.T) {
	db := migratedDB(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), `
runbook "site" { lock = "site" }
step "core.sleep" "work" {
  with = { duration = "1500ms" }
}
`)
	machines := []*Session{machine(t, db, nil), machine(t, db, nil)}
	var wg sync.WaitGroup
	start := make(chan struct{})
	outs := make([]*Outcome, 2)
	errs := make([]error, 2)
	for i, s := range machines {
		rb, err := s.Open(vars(), filepath.Join(dir, "main.hcl"))
		if err != nil {
			fatal(t, err)
		}
		defer rb.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outs[i], errs[i] = rb.Apply(context.Background(), nil)
		}()
	}
	close(start)
	wg.Wait()
	ran, refused := 0, 0
	for i := range machines {
		var le *journal.LockedError
		switch {
		case errs[i] == nil && outs[i].Result.State == journal.RunSucceeded:
			ran++
		case errors.As(errs[i], &le) && le.Live && strings.Contains(errs[i].Error(), "which is running"):
			refused++
		default:
			t.Errorf("machine %d: %+v, %v", i, outs[i], errs[i])
		}
	}
	if ran != 1 || refused != 1 {
		t.Fatalf("%d ran, %d refused; want exactly one of each", ran, refused)
	}
	runs, err := machines[1].Runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs seen from the other machine: %d, %v", len(runs), err)
	}
	rb, err := machines[1].Open(vars(), filepath.Join(dir, "main.hcl"))
	if err != nil {
		fatal(t, err)
	}
	defer rb.Close()
	if out, err := rb.Apply(context.Background(), nil); err != nil || out.Result.State != journal.RunSucceeded {
		t.Fatalf("after the first finished: %+v, %v", out, err)
	}
}

// A run whose process was killed keeps its key while its lease runs: a
// resume from another machine is refused; once the lease is over the
// resume takes the run over and finishes it.
func TestResumeTakesOverADeadHolder(t *testing.T) {
	db := migratedDB(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "go-on")
	write(t, filepath.Join(dir, "main.hcl"), `
runbook "site" { lock = "site" }
step "core.noop" "first" {
}
step "core.exec" "wait" {
  with       = { command = "sh", args = ["-c", "test -f `+marker+` || sleep 60"] }
  depends_on = [step.first]
}
`)
	const lease = 2 * time.Second
	cmd := exec.Command(selfExe, "apply", "-auto-approve", filepath.Join(dir, "main.hcl"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_STATE="+db, "RUNBOOK_STATE_LEASE="+lease.String(), "RUNBOOK_SELF_EXE="+selfExe,
		"RUNBOOK_STATE_KEY_FILE=none", "RUNBOOK_STATE_DIR="+filepath.Join(dir, "a"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}()
	other := machine(t, db, nil)
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == ""; {
		if time.Now().After(deadline) {
			t.Fatal("the run never reached its waiting step")
		}
		time.Sleep(100 * time.Millisecond)
		runs, err := other.Runs()
		if err == nil && len(runs) == 1 && runs[0].State.Steps["wait"] != nil && runs[0].State.Steps["wait"].State == journal.StepRunning {
			id = runs[0].State.Meta.ID
		}
	}
	if _, err := other.Resume(context.Background(), id, vars()); err == nil || !strings.Contains(err.Error(), "being worked on by another process") {
		t.Fatalf("resume of a live run: %v", err)
	}
	// kill -9 the process and its plugins.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	died := time.Now()
	write(t, marker, "")
	var out *Outcome
	var err error
	for {
		out, err = other.Resume(context.Background(), id, vars())
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "being worked on by another process") {
			t.Fatalf("resume after the kill: %v", err)
		}
		if time.Since(died) > lease+10*time.Second {
			t.Fatalf("the dead holder's lease never ended: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out.Result.State != journal.RunSucceeded {
		t.Fatalf("resumed run: %s", out.Result.State)
	}
	t.Logf("taken over %s after the kill (lease %s)", time.Since(died).Round(100*time.Millisecond), lease)
	if st, err := other.LockStatus("site"); err != nil || st.Holder.RunID != "" {
		t.Fatalf("the key after the resumed run finished: %+v, %v", st, err)
	}
}

// A worker's sessions share one open store (Options.DB): they see the
// same runs, and closing a session leaves the store open.
func TestSessionsShareAnOpenDatabase(t *testing.T) {
	db := migratedDB(t)
	store, err := journal.OpenPostgres(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), `step "core.noop" "a" {
}
`)
	for i := range 2 {
		s, err := New(Options{StateDir: filepath.Join(dir, ".runbook"), DB: store, Builtins: builtin.All(),
			Getenv: func(k string) string {
				if k == "RUNBOOK_SELF_EXE" {
					return selfExe
				}
				return ""
			}})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := s.Open(vars(), filepath.Join(dir, "main.hcl"))
		if err != nil {
			fatal(t, err)
		}
		out, err := rb.Apply(context.Background(), nil)
		rb.Close()
		if err != nil || out.Result.State != journal.RunSucceeded || !strings.HasPrefix(out.Journal, store.Where()) {
			t.Fatalf("apply %d: %+v, %v", i, out, err)
		}
		runs, err := s.Runs()
		if err != nil || len(runs) != i+1 {
			t.Fatalf("session %d sees %d runs, %v", i, len(runs), err)
		}
		s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, ".runbook", "runs")); err == nil {
		t.Fatal("runs were journaled on disk")
	}
}

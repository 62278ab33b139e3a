// Package e2e runs the runbook binary (built once) and the ledger test
// plugin (built once as the external plugin runbook-plugin-ledger) through
// crashes, secrets and locks.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/internal/e2etest"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/pluginhost"
)

var (
	bin       string // the runbook binary
	ledgerBin string // runbook-plugin-ledger
	ledgerSum string // its sha256, as the lock file pins it
)

func TestMain(m *testing.M) {
	b := e2etest.MustBuild("runbook-e2e")
	bin, ledgerBin, ledgerSum = b.Runbook, b.Ledger, b.LedgerSum
	code := m.Run()
	os.RemoveAll(b.Dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// runbook runs the binary in dir.
func runbook(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "RUNBOOK_SELF_EXE="+bin), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{code, so.String(), se.String()}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeLedgerRunbook writes src as dir/main.hcl with a plugin block naming
// the ledger test plugin, and the lock file pinning its sha256.
func writeLedgerRunbook(t *testing.T, dir, src string) {
	t.Helper()
	write(t, filepath.Join(dir, "main.hcl"), src+fmt.Sprintf("\nplugin \"ledger\" {\n  source = %q\n}\n", ledgerBin))
	write(t, filepath.Join(dir, pluginhost.LockFileName), fmt.Sprintf("plugin \"ledger\" {\n  sha256 = %q\n}\n", ledgerSum))
}

const crashRunbook = `
runbook "crash" {
  lock = "crash"
}
variable "ledger" {
  type = string
}
step "ledger.apply" "a" {
  with     = { ledger = var.ledger, id = "a", sleep_ms = 4 }
  rollback = native
}
step "ledger.apply" "b" {
  for_each = toset(["1", "2", "3"])
  with     = { ledger = var.ledger, id = "b${each.key}-${step.a.outputs.id}", sleep_ms = 4 }
}
step "ledger.apply" "c" {
  with       = { ledger = var.ledger, id = "c", sleep_ms = 4 }
  depends_on = [step.b]
}
step "ledger.apply" "d" {
  with       = { ledger = var.ledger, id = "d", sleep_ms = 4 }
  depends_on = [step.a]
}
step "ledger.apply" "e" {
  with       = { ledger = var.ledger, id = "e", sleep_ms = 4 }
  depends_on = [step.c, step.d]
}
`

var crashIDs = []string{"a", "b1-a", "b2-a", "b3-a", "c", "d", "e"}

// startKill starts the binary in its own process group and SIGKILLs the
// group after delay (a crash of the machine, plugins included). It
// returns the exit code, or -1 when killed.
func startKill(t *testing.T, dir string, delay time.Duration, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(delay):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return -1
	}
}

// startKillWhen starts the binary in its own process group and SIGKILLs
// the group once ready() holds (polled every millisecond) plus extra.
func startKillWhen(t *testing.T, dir string, ready func() bool, extra time.Duration, args ...string) int {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			return 0
		case <-tick.C:
			if !ready() {
				continue
			}
			time.Sleep(extra)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			if err := <-done; err == nil {
				return 0
			}
			return -1
		}
	}
}

func ledgerLines(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}

func ledgerCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return map[string]int{}
		}
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, id, _ := strings.Cut(sc.Text(), "\t")
		counts[id]++
	}
	return counts
}

// TestCrashResume kills the runbook process at random points of apply
// and resume, then resumes until the run succeeds: every step must end
// applied, and the ledger must show no effect applied twice.
func TestCrashResume(t *testing.T) {
	trials := 50
	if testing.Short() {
		trials = 10
	}
	// Measure one clean run to choose kill points.
	dir := t.TempDir()
	writeLedgerRunbook(t, dir, crashRunbook)
	t0 := time.Now()
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "-var", "ledger="+filepath.Join(dir, "ledger"), "main.hcl"); r.code != 0 {
		t.Fatalf("clean run: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	full := time.Since(t0)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, clean run %s", seed, full)
	var mu sync.Mutex
	killedAt := map[int]int{}
	// Trials run four at a time (each in its own directory): they mostly
	// wait for processes to start.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := 0; i < trials; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			t.Run(fmt.Sprintf("trial-%d", i), func(t *testing.T) {
				kills := crashTrial(t, i, full, rand.New(rand.NewPCG(seed, uint64(i))))
				mu.Lock()
				killedAt[kills]++
				mu.Unlock()
			})
		}(i)
	}
	wg.Wait()
	t.Logf("%d trials; trials by number of kills: %v", trials, killedAt)
	if killedAt[0] == trials {
		t.Error("no trial was killed: the kill points are wrong")
	}
}

// crashTrial is one apply killed at a random point, then resumed (the
// first resume killed too in odd trials) until the run succeeds.
func crashTrial(t *testing.T, i int, full time.Duration, rng *rand.Rand) (kills int) {
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	writeLedgerRunbook(t, dir, crashRunbook)
	// Kill once k effects are applied (k = 0: at a random point of the
	// start), plus a few random milliseconds: crash points spread over the
	// whole run, between and inside steps.
	k := rng.IntN(len(crashIDs) + 1)
	extra := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
	delay := extra
	if k == 0 {
		delay = time.Duration(rng.Int64N(int64(full)))
	}
	code := startKillWhen(t, dir, func() bool { return ledgerLines(ledger) >= k }, delay, "apply", "-auto-approve", "-var", "ledger="+ledger, "main.hcl")
	if code == -1 {
		kills++
	}
	t.Logf("killed at k=%d (+%s) with %d effects applied", k, delay, len(ledgerCounts(t, ledger)))
	for round := 0; code != 0 && round < 6; round++ {
		runs := journalRuns(t, dir)
		if len(runs) == 1 && runs[0].State == "succeeded" {
			// Killed after the run finished, while exiting.
			code = 0
			break
		}
		if len(runs) == 0 {
			// Killed before the journal existed: start again.
			code = startKill(t, dir, time.Minute, "apply", "-auto-approve", "-var", "ledger="+ledger, "main.hcl")
			continue
		}
		if round == 0 && i%2 == 1 {
			before := ledgerLines(ledger)
			code = startKillWhen(t, dir, func() bool { return ledgerLines(ledger) > before }, extra, "resume")
			if code == -1 {
				kills++
				continue
			}
		} else {
			r := runbook(t, dir, nil, "resume")
			code = r.code
			if code != 0 {
				t.Logf("resume exit %d\n%s\n%s", code, r.stdout, r.stderr)
			}
		}
	}
	if code != 0 {
		t.Fatalf("kill after %s: run did not finish, exit %d", delay, code)
	}
	counts := ledgerCounts(t, ledger)
	for _, id := range crashIDs {
		if counts[id] != 1 {
			t.Errorf("kill after %s: effect %s applied %d times (ledger %v)", delay, id, counts[id], counts)
		}
	}
	if runs := journalRuns(t, dir); len(runs) != 1 || runs[0].State != "succeeded" {
		t.Errorf("runs %+v", runs)
	}
	return kills
}

// journalRuns reads the runs of dir's journal directly (cheaper than
// running `runbook runs ls`).
func journalRuns(t *testing.T, dir string) []runRow {
	t.Helper()
	store := journal.NewLocal(filepath.Join(dir, ".runbook"))
	ids, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	var rows []runRow
	for _, id := range ids {
		st, err := store.Load(id)
		if err != nil {
			t.Fatalf("load run %s: %v", id, err)
		}
		rows = append(rows, runRow{ID: id, State: st.State})
	}
	return rows
}

type runRow struct {
	ID              string         `json:"id"`
	State           string         `json:"state"`
	Steps           map[string]int `json:"steps"`
	ResumeCommand   string         `json:"resume_command"`
	RollbackCommand string         `json:"rollback_command"`
}

func runsLs(t *testing.T, dir string) []runRow {
	t.Helper()
	r := runbook(t, dir, nil, "runs", "ls", "-json")
	if r.code != 0 {
		t.Fatalf("runs ls: %s", r.stderr)
	}
	var doc struct {
		FormatVersion int      `json:"format_version"`
		Runs          []runRow `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.FormatVersion != 1 {
		t.Fatalf("runs ls -json: %v (format_version %d)\n%s", err, doc.FormatVersion, r.stdout)
	}
	return doc.Runs
}

const canary = "CANARY-7f3a9e1c-secret"

const canaryRunbook = `
variable "token" {
  type      = string
  sensitive = true
}
step "core.exec" "echo" {
  with = { command = "sh", args = ["-c", "echo out:${var.token}; echo err:${var.token} >&2"] }
}
step "core.noop" "use" {
  with = { values = { t = var.token, o = step.echo.outputs.stdout } }
}
step "core.exec" "fail" {
  with       = { command = "sh", args = ["-c", "echo boom:${var.token} >&2; exit 7"] }
  depends_on = [step.use]
  rollback {
    action = core.exec
    with   = { command = "sh", args = ["-c", "echo undo:${var.token}"] }
  }
}
step "ledger.apply" "stderr" {
  with = { ledger = var.ledger, id = "id-${var.token}" }
}
output "leak" { value = step.echo.outputs.stdout }
variable "ledger" {
  type = string
}
`

// TestCanary: a sensitive value used in inputs, echoed to stdout and
// stderr by core.exec and into an error message never appears in any byte
// the run writes.
func TestCanary(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"plain", nil, nil},
		{"json", nil, []string{"-json"}},
		{"with-key", []string{"RUNBOOK_STATE_KEY=test-key-1"}, []string{"-json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLedgerRunbook(t, dir, canaryRunbook)
			// The ledger (written by the plugin, not by runbook) lives elsewhere.
			ledger := filepath.Join(t.TempDir(), "ledger")
			args := append([]string{"apply", "-auto-approve", "-var", "token=" + canary, "-var", "ledger=" + ledger}, tc.args...)
			r := runbook(t, dir, tc.env, append(args, "main.hcl")...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (rolled back)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if b, _ := os.ReadFile(ledger); !strings.Contains(string(b), canary) {
				t.Errorf("the plugin did not receive the secret: ledger %q", b)
			}
			if !strings.Contains(r.stderr, "applying ***") {
				t.Errorf("the plugin's stderr line is missing or unmasked:\n%s", r.stderr)
			}
			if !strings.Contains(r.stdout, "echo") || !strings.Contains(r.stdout+r.stderr, "boom:***") {
				t.Errorf("output lacks the masked error:\n%s\n%s", r.stdout, r.stderr)
			}
			check := func(what, s string) {
				if strings.Contains(s, canary) {
					t.Errorf("canary found in %s", what)
				}
			}
			check("stdout", r.stdout)
			check("stderr", r.stderr)
			var files int
			filepath.WalkDir(filepath.Join(dir, ".runbook"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, _ := os.ReadFile(p)
				files++
				check(p, string(b))
				return nil
			})
			if files == 0 {
				t.Fatal("no journal written")
			}
			for _, cmd := range [][]string{{"runs", "ls"}, {"runs", "show", runsLs(t, dir)[0].ID}} {
				r := runbook(t, dir, tc.env, cmd...)
				check(strings.Join(cmd, " "), r.stdout+r.stderr)
			}
		})
	}
}

const lockRunbook = `
runbook "locked" {
  lock = "db/main"
}
step "core.sleep" "wait" {
  with = { duration = "1500ms" }
}
`

// TestLock: two concurrent applies with one lock key: exactly one runs.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "main.hcl"), lockRunbook)
	var wg sync.WaitGroup
	res := make([]result, 2)
	for i := range res {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 200 * time.Millisecond)
			res[i] = runbook(t, dir, nil, "apply", "-auto-approve", "main.hcl")
		}(i)
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, r := range res {
		switch {
		case r.code == 0:
			ok++
		case r.code == 1 && strings.Contains(r.stderr, `lock "db/main" is held by run`):
			refused++
		default:
			t.Errorf("unexpected exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d ran, %d refused; want exactly one of each", ok, refused)
	}
	if n := len(runsLs(t, dir)); n != 1 {
		t.Errorf("%d runs journaled, want 1", n)
	}
	// Once the first finished, the key is free again.
	if r := runbook(t, dir, nil, "apply", "-auto-approve", "main.hcl"); r.code != 0 {
		t.Fatalf("third apply: %d %s", r.code, r.stderr)
	}
}

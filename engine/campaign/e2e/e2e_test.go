//go:build !windows

// Package e2e runs campaigns on real worker processes (the runbook binary,
// built once) against a real PostgreSQL, with the ledger test plugin
// counting effects, through a worker killed with kill -9 and a restart of
// the database.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/internal/e2etest"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/internal/testenv"
)

var (
	bin       string // the runbook binary
	ledgerBin string // runbook-plugin-ledger
	ledgerSum string // its sha256, as the lock file pins it
)

func TestMain(m *testing.M) {
	b := e2etest.MustBuild("runbook-campaign-e2e", "CGO_ENABLED=0")
	bin, ledgerBin, ledgerSum = b.Runbook, b.Ledger, b.LedgerSum
	// A key file, not a passphrase: each run's session derives its key
	// again, and argon2id takes a second.
	keyFile := filepath.Join(b.Dir, "state.key")
	if _, err := journal.NewKeyFile(keyFile); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(journal.EnvStateKeyFile, keyFile)
	code := testenv.RunMain(m)
	os.RemoveAll(b.Dir)
	os.Exit(code)
}

// ledgerRunbook applies two effects per target, each counted in the
// target's ledger file.
const ledgerRunbook = `
runbook "fleet" {
  lock = "host-${var.host}"
}
variable "host" {
  type = string
}
variable "dir" {
  type = string
}
step "ledger.apply" "a" {
  with     = { ledger = "${var.dir}/${var.host}.ledger", id = "a", sleep_ms = 30 }
  rollback = native
}
step "ledger.apply" "b" {
  with       = { ledger = "${var.dir}/${var.host}.ledger", id = "b", sleep_ms = 150 }
  rollback   = native
  depends_on = [step.a]
}
`

type env struct {
	dir, url, ledgers string
	pool              *pgxpool.Pool
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), url: testenv.Postgres(t)}
	e.ledgers = filepath.Join(e.dir, "ledgers")
	if err := os.MkdirAll(e.ledgers, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(e.dir, "main.hcl"), ledgerRunbook+fmt.Sprintf("\nplugin \"ledger\" {\n  source = %q\n}\n", ledgerBin))
	write(t, filepath.Join(e.dir, pluginhost.LockFileName), fmt.Sprintf("plugin \"ledger\" {\n  sha256 = %q\n}\n", ledgerSum))
	ctx := context.Background()
	if _, err := journal.Migrate(ctx, e.url); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	return e
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func (e *env) runbook(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
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

// worker starts a worker process in its own process group (killing the
// group is a crash of that machine, its plugins included).
func (e *env) worker(t *testing.T, i int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "worker", "-state", e.url, "-capacity", "4", "-lease", "3s")
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	log, err := os.Create(filepath.Join(e.dir, fmt.Sprintf("worker%d.log", i)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return cmd
}

func (e *env) status(t *testing.T, name string) *campaign.Status {
	t.Helper()
	st, err := campaign.NewStore(e.pool)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		s, err := st.Status(context.Background(), name)
		if err == nil {
			return s
		}
		if i > 50 {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // the database restarts
	}
}

// waitFor polls the campaign until cond holds.
func (e *env) waitFor(t *testing.T, name string, timeout time.Duration, cond func(*campaign.Status) bool) *campaign.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := e.status(t, name)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s: timed out; status %+v", name, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFleetSurvivesKilledWorkerAndDatabaseRestart: N runs over 4 worker
// processes, one killed with kill -9 midway, and one PostgreSQL restart:
// every run completes exactly once (the ledger counts each effect), no
// lock is left, no job is lost, and the killed worker's runs are resumed
// (not started again) within the lease.
func TestFleetSurvivesKilledWorkerAndDatabaseRestart(t *testing.T) {
	n := 200
	if s := os.Getenv("RUNBOOK_CAMPAIGN_RUNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	// The waits grow with the number of runs (make e2e runs 1,000).
	scale := time.Duration(max(1, n/200))
	e := setup(t)
	var csv strings.Builder
	csv.WriteString("host,dir\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&csv, "h%04d,%s\n", i, e.ledgers)
	}
	write(t, filepath.Join(e.dir, "targets.csv"), csv.String())
	workers := make([]*exec.Cmd, 4)
	for i := range workers {
		workers[i] = e.worker(t, i)
	}
	defer func() {
		for i := range workers {
			b, _ := os.ReadFile(filepath.Join(e.dir, fmt.Sprintf("worker%d.log", i)))
			if t.Failed() {
				t.Logf("worker %d:\n%s", i, b)
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "rescued") {
					t.Logf("worker %d: %s", i, l)
				}
			}
		}
	}()
	t0 := time.Now()
	r := e.runbook(t, "campaign", "start", "main.hcl", "-targets", "targets.csv", "-name", "fleet", "-state", e.url)
	if r.code != 0 {
		t.Fatalf("campaign start: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	e.waitFor(t, "fleet", scale*120*time.Second, func(s *campaign.Status) bool { return s.Counts[campaign.TargetSucceeded] >= n/4 })
	// kill -9 a worker in the middle of a run (its id is host-pid-suffix).
	store, err := journal.OpenPostgres(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	victim := 0
	for deadline := time.Now().Add(30 * time.Second); victim == 0 && time.Now().Before(deadline); {
		rows, err := e.pool.Query(context.Background(), `SELECT worker, run_id FROM runbook.targets WHERE state = 'running' AND run_id <> ''`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var w, id string
			if err := rows.Scan(&w, &id); err != nil {
				t.Fatal(err)
			}
			if st, err := store.Load(id); err == nil && st.State == journal.RunRunning && st.Steps["a"] != nil && st.Steps["a"].State == journal.StepSucceeded {
				parts := strings.Split(w, "-")
				victim, _ = strconv.Atoi(parts[len(parts)-2])
				break
			}
		}
		rows.Close()
	}
	if victim == 0 {
		t.Fatal("found no run in progress to kill its worker")
	}
	killed := time.Now()
	if err := syscall.Kill(-victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "fleet", scale*120*time.Second, func(s *campaign.Status) bool { return s.Counts[campaign.TargetSucceeded] >= n/2 })
	testenv.RestartPostgres(t)
	restarted := time.Now()
	s := e.waitFor(t, "fleet", scale*180*time.Second, func(s *campaign.Status) bool { return s.Finished() })
	elapsed := time.Since(t0)
	if s.State != campaign.StateDone || s.Counts[campaign.TargetSucceeded] != n {
		t.Fatalf("campaign ended %+v", s)
	}

	r = e.runbook(t, "campaign", "status", "fleet", "-state", e.url)
	if want := fmt.Sprintf("Campaign fleet (apply of %s): done\nTargets: %d (%d succeeded)\n", filepath.Join(e.dir, "main.hcl"), n, n); r.code != 0 || r.stdout != want {
		t.Fatalf("campaign status: exit %d\n%s%s\nwant:\n%s", r.code, r.stdout, r.stderr, want)
	}

	// Every run completed exactly once: one run per target, each effect
	// in its ledger once.
	ids, err := store.List()
	if err != nil || len(ids) != n {
		t.Fatalf("%d runs journaled (%v), want %d", len(ids), err, n)
	}
	var resumed []time.Time
	for _, id := range ids {
		st, err := store.Load(id)
		if err != nil || st.State != journal.RunSucceeded {
			t.Fatalf("run %s: %v %v", id, st.State, err)
		}
		for _, rec := range st.Resumes {
			if rec.Time.After(killed) {
				resumed = append(resumed, rec.Time)
			}
		}
		if l, err := store.Status(st.Meta.Lock); err != nil || l.Holder.PID != 0 && l.Active {
			t.Fatalf("lock %s still held: %+v %v", st.Meta.Lock, l, err)
		}
	}
	for i := 0; i < n; i++ {
		lines := readLines(t, filepath.Join(e.ledgers, fmt.Sprintf("h%04d.ledger", i)))
		if len(lines) != 2 {
			t.Fatalf("h%04d: ledger %q, want one a and one b", i, lines)
		}
	}
	var lost int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1 AND state <> 'completed'`, campaign.JobKind).Scan(&lost); err != nil || lost != 0 {
		t.Fatalf("%d jobs not completed (%v)", lost, err)
	}
	if len(resumed) == 0 {
		rows, _ := e.pool.Query(context.Background(), `SELECT line, run_id, attempts, worker FROM runbook.targets WHERE attempts > 1`)
		for rows.Next() {
			var line, attempts int
			var id, w string
			rows.Scan(&line, &id, &attempts, &w)
			st, err := store.Load(id)
			t.Logf("line %d run %s attempts %d worker %s: %+v %v", line, id, attempts, w, st, err)
		}
		rows.Close()
		t.Fatalf("no run was resumed after the kill: the killed worker ran nothing?")
	}
	first := resumed[0]
	for _, r := range resumed {
		if r.Before(first) {
			first = r
		}
	}
	t.Logf("kill at %s", killed.UTC().Format("15:04:05.000"))
	t.Logf("%d runs in %.1fs (%.1f runs/s); kill -9 at +%.1fs, first resumed run %.1fs after it (%d resumed); database restarted at +%.1fs",
		n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), killed.Sub(t0).Seconds(), first.Sub(killed).Seconds(), len(resumed), restarted.Sub(t0).Seconds())
	if d := first.Sub(killed); d > 30*time.Second {
		t.Errorf("the killed worker's first run resumed %s after the kill, want ≤ 30s", d)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestBadInput: an unreachable database is a clear error with nothing
// started; a bad targets row is named with its line and nothing is
// enqueued.
func TestBadInput(t *testing.T) {
	e := setup(t)
	write(t, filepath.Join(e.dir, "targets.csv"), "host,dir\nh1,/x\nh2\n")
	r := e.runbook(t, "campaign", "start", "main.hcl", "-targets", "targets.csv", "-state", "postgres://nobody@127.0.0.1:1/none?connect_timeout=5")
	if r.code != 1 || !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, "nothing was started") {
		t.Fatalf("unreachable: exit %d\n%s", r.code, r.stderr)
	}
	r = e.runbook(t, "campaign", "start", "main.hcl", "-targets", "targets.csv", "-state", e.url)
	if r.code != 1 || !strings.Contains(r.stderr, "targets.csv:3: wrong number of fields") {
		t.Fatalf("bad row: exit %d\n%s", r.code, r.stderr)
	}
	write(t, filepath.Join(e.dir, "targets.json"), "[\n  {\"host\": \"h1\", \"dir\": \"/x\"},\n  {\"host\": \"h2\", \"dir\": 3, \"oops\": 1}\n]\n")
	r = e.runbook(t, "campaign", "start", "main.hcl", "-targets", "targets.json", "-state", e.url)
	if r.code != 1 || !strings.Contains(r.stderr, `targets.json:3: "oops" is not a variable of the runbook`) {
		t.Fatalf("bad JSON row: exit %d\n%s", r.code, r.stderr)
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM river_job) + (SELECT count(*) FROM runbook.campaigns)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d jobs and campaigns recorded (%v)", n, err)
	}
	r = e.runbook(t, "campaign", "ls", "-state", e.url)
	if r.code != 0 || !strings.Contains(r.stdout, "No campaign.") {
		t.Fatalf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// selfExe is a runbook binary: builtin plugins are that binary started
// again in plugin mode.
var selfExe string

func TestMain(m *testing.M) { os.Exit(testenv.RunMainWithRunbook(m, &selfExe)) }

func TestParseTargets(t *testing.T) {
	tests := []struct {
		name, file, src string
		want            []map[string]string // field values as var args
		err             string
	}{
		{name: "csv", file: "t.csv", src: "host,port\na,1\n\"b,c\",2\n",
			want: []map[string]string{{"host": "a", "port": "1"}, {"host": "b,c", "port": "2"}}},
		{name: "json", file: "t.json", src: "[\n  {\"host\": \"a\", \"port\": 1},\n  {\"host\": \"b\", \"tags\": [\"x\"]}\n]\n",
			want: []map[string]string{{"host": "a", "port": "1"}, {"host": "b", "tags": `["x"]`}}},
		{name: "csv short row", file: "t.csv", src: "host,port\na,1\nb\n", err: "t.csv:3: wrong number of fields"},
		{name: "csv header twice", file: "t.csv", src: "host,host\na,1\n", err: `t.csv:1: column "host" appears twice`},
		{name: "json not object", file: "t.json", src: "[\n {\"host\": \"a\"},\n 3\n]", err: "t.json:3: not a JSON object"},
		{name: "empty", file: "t.csv", src: "", err: "empty targets file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := ParseTargets(tt.file, strings.NewReader(tt.src))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []map[string]string
			for _, r := range rows {
				m := map[string]string{}
				for k, v := range r.Fields {
					m[k] = VarArg(v)
				}
				got = append(got, m)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Fatalf("rows (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseBudget(t *testing.T) {
	for _, tt := range []struct {
		spec  string
		total int
		want  int
	}{{"", 10, 0}, {"3", 10, 3}, {"10%", 200, 20}, {"1%", 10, 1}, {"15%", 10, 2}} {
		b, err := ParseBudget(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Threshold(tt.total); got != tt.want {
			t.Errorf("%q of %d = %d, want %d", tt.spec, tt.total, got, tt.want)
		}
	}
	for _, bad := range []string{"x", "-1", "0%", "150%"} {
		if _, err := ParseBudget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// fleetRunbook runs a check that fails when var.fail is "yes".
const fleetRunbook = `
runbook "fleet" {
  lock = "host-${var.host}"
}
variable "host" {
  type = string
}
variable "fail" {
  type    = string
  default = "no"
}
variable "token" {
  type      = string
  default   = "none"
  sensitive = true
}
step "core.noop" "a" {
  with = { values = var.host }
}
step "core.exec" "check" {
  with       = { command = var.fail == "yes" ? "false" : "true" }
  depends_on = [step.a]
}
`

type fixture struct {
	dir   string
	file  string
	store *Store
	pool  *pgxpool.Pool
	db    *journal.PGStore // where the runs are journaled
	env   map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := testenv.Postgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := journal.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSchema(ctx, pool); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(pool)
	if err != nil {
		t.Fatal(err)
	}
	db, err := journal.OpenPostgres(ctx, url, journal.WithLease(3*time.Second), journal.WithMaxConns(20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	dir := t.TempDir()
	f := &fixture{dir: dir, file: filepath.Join(dir, "main.hcl"), store: st, pool: pool, db: db,
		env: map[string]string{"RUNBOOK_SELF_EXE": selfExe, journal.EnvStateKeyFile: filepath.Join(dir, "state.key")}}
	// A key file, not a passphrase: each run's session derives its key
	// again, and argon2id takes a second.
	if _, err := journal.NewKeyFile(f.env[journal.EnvStateKeyFile]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.file, []byte(fleetRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) opts() session.Options {
	return session.Options{DB: f.db, StateDir: filepath.Join(f.dir, ".runbook"), Builtins: builtin.All(),
		Getenv: func(k string) string { return f.env[k] }}
}

// start prepares rows (CSV text) and starts a campaign.
func (f *fixture) start(t *testing.T, name, csv string, sp Spec) (*Status, error) {
	t.Helper()
	rows, err := ParseTargets("targets.csv", strings.NewReader(csv))
	if err != nil {
		return nil, err
	}
	cfg, diags := lang.Load(f.file)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s, err := session.New(f.opts())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sealer, err := Sealer(s)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := Prepare(cfg, "targets.csv", name, rows, nil, sealer)
	if err != nil {
		return nil, err
	}
	sp.Name, sp.Files, sp.Targets = name, []string{f.file}, ts
	sp.KeyFingerprint, _ = s.KeyInfo()
	return f.store.Start(context.Background(), sp)
}

func (f *fixture) worker(t *testing.T, capacity int) *Worker {
	t.Helper()
	w, err := NewWorker(WorkerConfig{Pool: f.pool, Capacity: capacity, Session: f.opts()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return w
}

// wait polls the campaign until it is finished.
func (f *fixture) wait(t *testing.T, name string) *Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := f.store.Status(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Finished() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s did not finish: %+v", name, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func targetsCSV(n int, fail func(i int) bool) string {
	var b strings.Builder
	b.WriteString("host,fail,token\n")
	for i := 1; i <= n; i++ {
		v := "no"
		if fail != nil && fail(i) {
			v = "yes"
		}
		fmt.Fprintf(&b, "h%03d,%s,secret-%03d\n", i, v, i)
	}
	return b.String()
}

// TestCampaignRunsEveryTarget: every target runs once, under the
// concurrency cap; the sensitive column is sealed in the database.
func TestCampaignRunsEveryTarget(t *testing.T) {
	f := newFixture(t)
	if _, err := f.start(t, "c1", targetsCSV(12, nil), Spec{MaxConcurrency: 3}); err != nil {
		t.Fatal(err)
	}
	var queued int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1`, JobKind).Scan(&queued); err != nil || queued != 3 {
		t.Fatalf("%d jobs enqueued at start (%v), want 3 (the concurrency cap)", queued, err)
	}
	f.worker(t, 4)
	f.worker(t, 4)
	st := f.wait(t, "c1")
	if st.State != StateDone || st.Counts[TargetSucceeded] != 12 || st.Total != 12 {
		t.Fatalf("status %+v", st)
	}
	var leaked int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM runbook.targets WHERE vars::text LIKE '%secret-%'`).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("%d targets hold a sensitive value in the clear (%v)", leaked, err)
	}
	var runs int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(DISTINCT run_id) FROM runbook.targets WHERE run_id <> ''`).Scan(&runs); err != nil || runs != 12 {
		t.Fatalf("%d distinct runs (%v), want 12", runs, err)
	}
	ids, _ := f.db.List()
	if len(ids) != 12 {
		t.Fatalf("%d journaled runs, want 12", len(ids))
	}
}

// TestMaxErrorsPausesAtThreshold: with -max-errors 3 the campaign pauses
// on the third failure, and no run starts after it.
func TestMaxErrorsPausesAtThreshold(t *testing.T) {
	f := newFixture(t)
	// Every other target fails.
	if _, err := f.start(t, "budget", targetsCSV(20, func(i int) bool { return i%2 == 0 }), Spec{MaxConcurrency: 1, MaxErrors: Budget{N: 3, Spec: "3"}}); err != nil {
		t.Fatal(err)
	}
	f.worker(t, 2)
	st := f.wait(t, "budget")
	if st.State != StatePaused || st.Counts[TargetFailed] != 3 || st.Counts[TargetSucceeded] != 3 || st.Counts[TargetPending] != 14 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(st.Reason, "error budget spent: 3 runs failed") {
		t.Fatalf("reason %q", st.Reason)
	}
	if len(st.Failed) != 3 || st.Failed[0].Line != 3 || !strings.Contains(st.Failed[0].Error, "check") {
		t.Fatalf("failed targets %+v", st.Failed)
	}
	// Resuming goes on until the next failure.
	if err := f.store.Resume(context.Background(), "budget"); err != nil {
		t.Fatal(err)
	}
	st = f.wait(t, "budget")
	if st.State != StatePaused || st.Counts[TargetFailed] != 4 || st.Counts[TargetSucceeded] != 4 {
		t.Fatalf("after resume: %+v", st)
	}
}

// TestCanaryFailureStops: a failed canary stops the campaign before any
// other target starts.
func TestCanaryFailureStops(t *testing.T) {
	f := newFixture(t)
	if _, err := f.start(t, "canary", targetsCSV(10, func(i int) bool { return i == 2 }), Spec{Canary: 2}); err != nil {
		t.Fatal(err)
	}
	f.worker(t, 4)
	st := f.wait(t, "canary")
	if st.State != StateStopped || st.Counts[TargetFailed] != 1 || st.Counts[TargetSucceeded] != 1 || st.Counts[TargetPending] != 8 {
		t.Fatalf("status %+v", st)
	}
	var started int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM runbook.targets WHERE NOT canary AND (started_at IS NOT NULL OR run_id <> '')`).Scan(&started); err != nil || started != 0 {
		t.Fatalf("%d non-canary targets started (%v)", started, err)
	}
	if !strings.Contains(st.Reason, "canary target at line 3") {
		t.Fatalf("reason %q", st.Reason)
	}

	// A passing canary lets the rest run.
	if _, err := f.start(t, "canary-ok", targetsCSV(6, nil), Spec{Canary: 2}); err != nil {
		t.Fatal(err)
	}
	if st := f.wait(t, "canary-ok"); st.State != StateDone || st.Counts[TargetSucceeded] != 6 {
		t.Fatalf("status %+v", st)
	}
}

// TestBadRowEnqueuesNothing: a row whose value does not fit its variable
// is named with its line, and nothing is recorded or enqueued.
func TestBadRowEnqueuesNothing(t *testing.T) {
	f := newFixture(t)
	_, err := f.start(t, "bad", "host,fail,extra\nh1,no,x\n", Spec{})
	var re *RowError
	if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(err.Error(), `targets.csv:2: "extra" is not a variable of the runbook`) {
		t.Fatalf("err = %v", err)
	}
	_, err = f.start(t, "dup", "host\nh1\nh2\nh1\n", Spec{})
	if err == nil || !strings.Contains(err.Error(), `targets.csv:4: lock key "host-h1" is also the lock key of line 2`) {
		t.Fatalf("err = %v", err)
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM river_job) + (SELECT count(*) FROM runbook.campaigns)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d jobs and campaigns recorded (%v)", n, err)
	}
}

// TestPauseCancelRollback: a paused campaign starts nothing; cancel
// cancels what did not start; rollback undoes every run that started.
func TestPauseCancelRollback(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.start(t, "cx", targetsCSV(4, nil), Spec{}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Pause(ctx, "cx"); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Cancel(ctx, "cx"); err != nil {
		t.Fatal(err)
	}
	if st := f.wait(t, "cx"); st.State != StateCancelled || st.Counts[TargetCancelled] != 4 {
		t.Fatalf("cancelled: %+v", st)
	}
	if _, err := f.start(t, "pc", targetsCSV(6, nil), Spec{MaxConcurrency: 2}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Pause(ctx, "pc"); err != nil {
		t.Fatal(err)
	}
	f.worker(t, 2)
	st := f.wait(t, "pc")
	if st.State != StatePaused || st.Counts[TargetPending] != 6 {
		t.Fatalf("paused: %+v", st)
	}
	if err := f.store.Resume(ctx, "pc"); err != nil {
		t.Fatal(err)
	}
	if st := f.wait(t, "pc"); st.State != StateDone || st.Counts[TargetSucceeded] != 6 {
		t.Fatalf("resumed: %+v", st)
	}
	rs, err := f.store.Rollback(ctx, "pc", "pc-rollback", Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Kind != KindRollback || rs.Total != 6 {
		t.Fatalf("rollback campaign %+v", rs)
	}
	if st := f.wait(t, "pc-rollback"); st.State != StateDone || st.Counts[TargetSucceeded] != 6 {
		t.Fatalf("rollback: %+v", st)
	}
	store := f.db
	ids, _ := store.List()
	for _, id := range ids {
		if s, _ := store.Load(id); s.State != journal.RunRolledBack {
			t.Fatalf("run %s is %s", id, s.State)
		}
	}
}

// TestAddTargets: targets added one by one (the consumer's campaign mode)
// create the campaign, a repeated lock key adds nothing, and a done
// campaign runs what is added later.
func TestAddTargets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg, _ := lang.Load(f.file)
	add := func(host string) int {
		ts, err := Prepare(cfg, "msg", "added/"+host, []Row{{Fields: map[string]cty.Value{"host": cty.StringVal(host)}}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := f.store.Add(ctx, Spec{Name: "added", Files: []string{f.file}, Targets: ts})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if add("a") != 1 || add("b") != 1 || add("a") != 0 {
		t.Fatal("adding a, b, a again did not add two targets")
	}
	f.worker(t, 2)
	if st := f.wait(t, "added"); st.State != StateDone || st.Counts[TargetSucceeded] != 2 {
		t.Fatalf("status %+v", st)
	}
	add("c")
	if st := f.wait(t, "added"); st.State != StateDone || st.Counts[TargetSucceeded] != 3 {
		t.Fatalf("status %+v", st)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/internal/testenv"
)

const pgRunbook = `runbook "pgdemo" { lock = "pgdemo" }
variable "token" {
  type      = string
  sensitive = true
}
step "core.file" "conf" {
  with     = { path = "out.txt", content = "v1" }
  rollback = native
}
step "core.noop" "use" {
  with       = { values = { token = var.token } }
  depends_on = [step.conf]
}
`

// dumpDatabase is the text of every row of every table of the database
// (the runbook schema's and River's).
func dumpDatabase(t *testing.T, dbURL string) []byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 4 {
		t.Fatalf("tables %v, %v", tables, err)
	}
	var all bytes.Buffer
	for _, tb := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+tb+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&all, "== %s\n%s\n", tb, strings.Join(texts, "\n"))
	}
	return all.Bytes()
}

// TestStatePostgresEndToEnd: the real binary against a real PostgreSQL:
// a database without the schema is refused until `state migrate`, then
// apply, runs and rollback work on it as on disk; pull and push copy the
// run record by record; neither the sensitive variable nor the URL's
// password reaches the database or the output.
func TestStatePostgresEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	bin := runbookBinary(t)
	plain := testenv.Postgres(t)
	const canary, pw = "canary-token-5c0ffee", "canary-pw-d00d" // the cluster trusts local users: any password works
	u, _ := url.Parse(plain)
	u.User = url.UserPassword(u.User.Username(), pw)
	dbURL := u.String()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(pgRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "RUNBOOK_SELF_EXE=" + bin}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNBOOK_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	var printed bytes.Buffer
	runbook := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		printed.Write(out)
		if (err == nil) != wantOK {
			t.Fatalf("runbook %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// No schema yet: refused with what to do, nothing started.
	out := runbook(false, "apply", "-auto-approve", "-state", dbURL, "-var", "token="+canary, "main.hcl")
	if !strings.Contains(out, "runbook state migrate") {
		t.Fatalf("apply without the schema:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); err == nil {
		t.Fatal("a step ran without a usable state")
	}
	out = runbook(true, "state", "migrate", "-state", dbURL)
	if !strings.Contains(out, "version 0 -> 1") || !strings.Contains(out, "River's migrations applied") {
		t.Fatalf("migrate:\n%s", out)
	}
	if out = runbook(true, "state", "migrate", "-state", dbURL); !strings.Contains(out, "up to date (version 1)") || !strings.Contains(out, "River's tables are up to date") {
		t.Fatalf("second migrate:\n%s", out)
	}

	out = runbook(true, "apply", "-auto-approve", "-state", dbURL, "-var", "token="+canary, "main.hcl")
	id := regexp.MustCompile(`[0-9A-HJKMNP-TV-Z]{26}`).FindString(out)
	if id == "" {
		t.Fatalf("no run id in:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); err != nil {
		t.Fatalf("apply did not run: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, ".runbook", "runs")); err == nil {
		t.Fatal("the run was journaled on disk, not in the database")
	}
	// RUNBOOK_STATE selects the database as -state does.
	env = append(env, "RUNBOOK_STATE="+dbURL)
	if out = runbook(true, "runs", "ls"); !strings.Contains(out, id) || !strings.Contains(out, "succeeded") {
		t.Fatalf("runs ls:\n%s", out)
	}
	runbook(true, "runs", "show", id[:10])
	out = runbook(true, "rollback", "-auto-approve", id)
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); err == nil {
		t.Fatalf("rollback left the file:\n%s", out)
	}
	if out = runbook(true, "runs", "ls", "-json"); !strings.Contains(out, `"rolled_back"`) {
		t.Fatalf("runs ls after rollback:\n%s", out)
	}
	if out = runbook(true, "unlock", "-auto-approve", "pgdemo"); !strings.Contains(out, "is free") {
		t.Fatalf("unlock:\n%s", out)
	}

	// Pull to a directory, twice; push to a second database.
	local := filepath.Join(t.TempDir(), "state")
	if out = runbook(true, "state", "pull", "-state-dir", local); !strings.Contains(out, "1 runs copied") {
		t.Fatalf("pull:\n%s", out)
	}
	if out = runbook(true, "state", "pull", "-state-dir", local); !strings.Contains(out, "0 runs copied") || !strings.Contains(out, "1 already there") {
		t.Fatalf("second pull:\n%s", out)
	}
	if out = runbook(true, "runs", "ls", "-state-dir", local); !strings.Contains(out, id) || !strings.Contains(out, "rolled_back") {
		t.Fatalf("runs ls of the pulled directory:\n%s", out)
	}
	other := testenv.Postgres(t)
	runbook(true, "state", "migrate", "-state", other)
	if out = runbook(true, "state", "push", "-state", other, "-state-dir", local, id[:12]); !strings.Contains(out, "1 runs copied") {
		t.Fatalf("push:\n%s", out)
	}
	lines := func(db string) string {
		conn, err := pgx.Connect(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var s string
		if err := conn.QueryRow(context.Background(), `SELECT string_agg(line, E'\n' ORDER BY seq) FROM runbook.records WHERE run_id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if a, b := lines(plain), lines(other); a != b || !strings.Contains(a, `"sealed"`) {
		t.Errorf("the pushed records differ from the original ones, or hold no sealed value:\n%s\n---\n%s", a, b)
	}

	all := append(dumpDatabase(t, plain), printed.Bytes()...)
	all = append(all, dumpDatabase(t, other)...)
	for _, secret := range []string{canary, pw} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("%q is in the database or the output", secret)
		}
	}

	// Prune removes the finished run from the database.
	if out = runbook(true, "runs", "prune", "-older-than", "0", "-keep", "0", "-auto-approve"); !strings.Contains(out, "1 runs from postgres://") {
		t.Fatalf("prune:\n%s", out)
	}
	if out = runbook(true, "runs", "ls"); strings.Contains(out, id) {
		t.Fatalf("runs ls after prune:\n%s", out)
	}
}

// TestStateBadInput: an unreachable database is a clear error and starts
// nothing; a database from a newer runbook is refused; state commands
// want a database.
func TestStateBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts PostgreSQL")
	}
	bin := runbookBinary(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(pgRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "RUNBOOK_SELF_EXE="+bin)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("runbook %s succeeded:\n%s", strings.Join(args, " "), out)
		}
		return string(out)
	}
	down := fmt.Sprintf("postgres://runbook@127.0.0.1:%d/state?connect_timeout=3", testenv.FreePort(t))
	out := run("apply", "-auto-approve", "-state", down, "-var", "token=x", "main.hcl")
	if !strings.Contains(out, "check that PostgreSQL runs") {
		t.Errorf("unreachable:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); err == nil {
		t.Error("a step ran without a reachable state")
	}
	if out = run("runs", "ls", "-state", down); !strings.Contains(out, "check that PostgreSQL runs") {
		t.Errorf("runs ls, unreachable:\n%s", out)
	}

	db := testenv.Postgres(t)
	if out := run("state", "push", "-state", db); !strings.Contains(out, "runbook state migrate") {
		t.Errorf("push without the schema:\n%s", out)
	}
	cmd := exec.Command(bin, "state", "migrate", "-state", db)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO runbook.schema_version (version) VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"apply", "-auto-approve", "-state", db, "-var", "token=x", "main.hcl"}, {"state", "migrate", "-state", db}} {
		if out := run(args...); !strings.Contains(out, "version 7, made by a newer runbook") || !strings.Contains(out, "upgrade runbook") {
			t.Errorf("%s on a newer schema:\n%s", args[0], out)
		}
	}
	if out := run("state", "migrate", "-state", dir); !strings.Contains(out, "no PostgreSQL state") {
		t.Errorf("migrate of a directory:\n%s", out)
	}
}

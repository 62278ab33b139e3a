package runbooks_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/runbookdev/runbook/internal/testenv"
)

// The shipped synapse-to-mas runbook, run end to end by the runbook binary
// as an operator runs it: `runbook apply` with the runbook's own variables,
// `runbook approve` for its approval, `runbook rollback` afterwards.
//
// Real: PostgreSQL 15 with a Synapse database (the tables the migration
// reads, filled as Synapse fills them) and a blank MAS database at a
// supported schema version (plugins/synapse/testdata); pg_dump for the
// backups; the synapse plugin; core.exec, core.file, core.approve and
// core.http.
//
// Stand-ins, because neither Synapse nor MAS can be installed here: the
// stop/start commands of Synapse and MAS only record that they ran and
// whether the service is "running" (no process is stopped or started, so
// the table locks of a live Synapse are simulated by the failure cases that
// need them); `mas-cli config sync` only writes the upstream provider rows
// of the MAS config (the real command also syncs OAuth 2.0 clients and
// reads more of the config); MAS never runs, so it writes nothing at
// start-up; the verify URL is a local HTTP server, not Synapse through MAS.

const e2eServer = "example.com"

// e2eProvider is the MAS config's upstream provider (a ULID).
const e2eProvider = "01JAAAAAAAAAAAAAAAAAAAAAAA"

// synapseRows fills the Synapse tables as Synapse does: creation_ts in
// seconds, threepid and device times in milliseconds, admin/guest/
// deactivated as smallints, bcrypt hashes, OIDC ids `oidc-<idp_id>`, a
// hidden device (cross-signing), a puppet token, a deviceless token, a
// refresh pair whose successor is unused, and users the migration skips.
const synapseRows = `
INSERT INTO users (name, password_hash, creation_ts, admin, upgrade_ts, is_guest, appservice_id, consent_version,
                   consent_server_notice_sent, user_type, deactivated, shadow_banned, consent_ts, approved, locked, suspended) VALUES
 ('@alice:example.com', '$2b$12$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1600000000, 1, NULL, 0, NULL, '1.0', '1.0', NULL, 0, false, 1600000500000, true, false, false),
 ('@bob:example.com', NULL, 1600000100, 0, NULL, 0, NULL, NULL, NULL, NULL, 0, false, NULL, true, false, false),
 ('@carol:example.com', '$2b$12$ccccccccccccccccccccccccccccccccccccccccccccccccccccc', 1600000200, 0, NULL, 0, NULL, NULL, NULL, NULL, 1, false, NULL, true, false, false),
 ('@dave:example.com', '$2b$12$ddddddddddddddddddddddddddddddddddddddddddddddddddddd', 1600000300, 0, NULL, 0, NULL, NULL, NULL, NULL, 0, false, NULL, true, true, false),
 ('@123:example.com', NULL, 1600000400, 0, 1600000401, 1, NULL, NULL, NULL, NULL, 0, NULL, NULL, true, false, false),
 ('@irc_bot:example.com', NULL, 1600000500, 0, NULL, 0, 'irc', NULL, NULL, 'bot', 0, NULL, NULL, true, false, false);
INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) VALUES
 ('@alice:example.com', 'email', 'alice@mail.example', 1600000001000, 1600000001000),
 ('@bob:example.com', 'email', 'bob@mail.example', 1600000101000, 1600000101000),
 ('@bob:example.com', 'msisdn', '447700900123', 1600000102000, 1600000102000);
INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES ('oidc-github', 'gh-1234', '@bob:example.com');
INSERT INTO devices (user_id, device_id, display_name, last_seen, ip, user_agent, hidden) VALUES
 ('@alice:example.com', 'ALICEPHONE', 'Element Android', 1700000000000, '192.0.2.1', 'Element/1.6', false),
 ('@alice:example.com', 'ALICEWEB', 'Element Web', 1700000100000, '-', 'Mozilla/5.0', false),
 ('@alice:example.com', 'ALICEMASTER', NULL, NULL, NULL, NULL, true),
 ('@bob:example.com', 'BOBDEV', NULL, 1700000200000, '2001:db8::1', 'curl', false),
 ('@carol:example.com', 'CAROLDEV', 'old', 1650000000000, '198.51.100.7', 'Element/1.0', false),
 ('@123:example.com', 'GUESTDEV', NULL, NULL, NULL, NULL, false);
INSERT INTO refresh_tokens (id, user_id, device_id, token, next_token_id, expiry_ts, ultimate_session_expiry_ts) VALUES
 (1, '@alice:example.com', 'ALICEWEB', 'syr_alice_web', NULL, 1700000400000, NULL);
INSERT INTO access_tokens (id, user_id, device_id, token, valid_until_ms, puppets_user_id, last_validated, refresh_token_id, used) VALUES
 (1, '@alice:example.com', 'ALICEPHONE', 'syt_alice_phone', NULL, NULL, 1700000000000, NULL, NULL),
 (2, '@alice:example.com', 'ALICEWEB', 'syt_alice_web', 1700000300000, NULL, 1700000100000, 1, false),
 (3, '@alice:example.com', NULL, 'syt_alice_api', NULL, NULL, 1690000000000, NULL, NULL),
 (4, '@bob:example.com', 'BOBDEV', 'syt_bob', NULL, NULL, 1700000200000, NULL, NULL),
 (5, '@bob:example.com', 'BOBDEV', 'syt_puppet', NULL, '@alice:example.com', 1700000200000, NULL, NULL),
 (6, '@carol:example.com', 'CAROLDEV', 'syt_carol', NULL, NULL, 1650000000000, NULL, NULL),
 (7, '@123:example.com', 'GUESTDEV', 'syt_guest', NULL, NULL, NULL, NULL, NULL);
`

// synapseE2E is one operator's machine: the two databases, the configs,
// the stand-in commands and the state directory of the runs.
type synapseE2E struct {
	t        *testing.T
	bin      string
	dir      string
	state    string // the stand-ins' directory: calls, service states, failure markers
	synURL   string
	masURL   string
	hs       string // homeserver.yaml
	hsBefore []byte
	backup   string
	vars     map[string]any
}

func newSynapseE2E(t *testing.T, bin string, verify string) *synapseE2E {
	t.Helper()
	schema := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "plugins", "synapse", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	s := &synapseE2E{t: t, bin: bin, dir: t.TempDir()}
	s.synURL = testenv.PostgresWith(t, testenv.PGDatabase{CollateC: true, Init: schema("synapse.sql")})
	s.masURL = testenv.PostgresWith(t, testenv.PGDatabase{Init: schema("mas.sql")})
	s.exec(s.synURL, synapseRows)
	s.state = filepath.Join(s.dir, "standin")
	s.backup = filepath.Join(s.dir, "backups")
	for _, d := range []string{s.state, filepath.Join(s.dir, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.write(filepath.Join(s.state, "synapse"), "running\n", 0o644)
	s.write(filepath.Join(s.state, "mas"), "stopped\n", 0o644)

	u, err := url.Parse(s.synURL)
	if err != nil {
		t.Fatal(err)
	}
	s.hs = filepath.Join(s.dir, "etc", "homeserver.yaml")
	hs := fmt.Sprintf(`server_name: %s
database:
  name: psycopg2
  args:
    user: %s
    host: %s
    port: %s
    dbname: %s
password_config:
  pepper: "pepper-e2e"
oidc_providers:
  - idp_id: github
    issuer: https://github.example
    client_id: gh
`, e2eServer, u.User.Username(), u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"))
	s.write(s.hs, hs, 0o640)
	s.hsBefore = []byte(hs)
	mas := filepath.Join(s.dir, "etc", "mas.yaml")
	s.write(mas, fmt.Sprintf(`matrix:
  homeserver: %s
database:
  uri: %q
passwords:
  schemes:
    - version: 1
      algorithm: bcrypt
      unicode_normalization: true
      secret: "pepper-e2e"
    - version: 2
      algorithm: argon2id
upstream_oauth2:
  providers:
    - id: %s
      synapse_idp_id: oidc-github
      issuer: https://github.example
      client_id: gh
      scope: openid
      token_endpoint_auth_method: client_secret_basic
`, e2eServer, s.masURL, e2eProvider), 0o600)

	// The stand-ins.
	standin := filepath.Join(s.dir, "standin.sh")
	s.write(standin, fmt.Sprintf(`#!/bin/sh
# Stand-in for a service command: records the call, sets the service's
# state, fails when a marker says so (fail-NAME always, fail-NAME-once once).
set -eu
S=%q
name=$1; shift
echo "$name $*" >> "$S/calls"
if [ -e "$S/fail-$name" ]; then echo "injected failure of $name" >&2; exit 1; fi
if [ -e "$S/fail-$name-once" ]; then rm "$S/fail-$name-once"; echo "injected failure of $name" >&2; exit 1; fi
case $name in
  stop_synapse) echo stopped > "$S/synapse" ;;
  start_synapse) echo running > "$S/synapse" ;;
  stop_mas) echo stopped > "$S/mas" ;;
  start_mas)
    echo running > "$S/mas"
    if [ -e "$S/plant-done-link" ]; then
      # Where the run's done marker goes, a symlink (core.file refuses it).
      for f in %q/synapse.*.dump; do r=${f##*/synapse.}; ln -s /nonexistent "%s/done.${r%%.dump}"; done
    fi ;;
esac
`, s.state, s.backup, s.backup), 0o755)
	uid := ulid.MustParseStrict(e2eProvider)
	masCLI := filepath.Join(s.dir, "mas-cli")
	s.write(masCLI, fmt.Sprintf(`#!/bin/sh
# Stand-in for mas-cli: "config sync" writes the upstream provider rows of
# the MAS config, as the real command does (nothing else).
set -eu
S=%q
echo "mas-cli $*" >> "$S/calls"
if [ -e "$S/fail-mas_config_sync" ]; then echo "injected failure of mas-cli" >&2; exit 1; fi
[ "$1 $2" = "config sync" ] || { echo "unexpected mas-cli $*" >&2; exit 2; }
psql -q -v ON_ERROR_STOP=1 %q -c "INSERT INTO upstream_oauth_providers
  (upstream_oauth_provider_id, issuer, scope, client_id, token_endpoint_auth_method, created_at)
  VALUES ('%s', 'https://github.example', 'openid', 'gh', 'client_secret_basic', now())
  ON CONFLICT (upstream_oauth_provider_id) DO UPDATE SET issuer = EXCLUDED.issuer, scope = EXCLUDED.scope,
    client_id = EXCLUDED.client_id, token_endpoint_auth_method = EXCLUDED.token_endpoint_auth_method"
`, s.state, s.masURL, uuidOf(uid)), 0o755)

	cmd := func(name string) []string { return []string{standin, name} }
	s.vars = map[string]any{
		"server_name":                e2eServer,
		"synapse_config":             []string{s.hs},
		"mas_config":                 mas,
		"synapse_database_url":       s.synURL,
		"mas_database_url":           s.masURL,
		"backup_dir":                 s.backup,
		"homeserver_config":          s.hs,
		"homeserver_config_with_mas": hs + "matrix_authentication_service:\n  enabled: true\n  endpoint: http://127.0.0.1:8080/\n  secret: shared\n",
		"mas_cli":                    masCLI,
		"stop_synapse":               cmd("stop_synapse"),
		"start_synapse":              cmd("start_synapse"),
		"stop_mas":                   cmd("stop_mas"),
		"start_mas":                  cmd("start_mas"),
		"verify_url":                 verify,
		"verify_retry_for":           "1s",
	}
	return s
}

func uuidOf(id ulid.ULID) string {
	h := hex.EncodeToString(id[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *synapseE2E) write(path, content string, mode os.FileMode) {
	s.t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		s.t.Fatal(err)
	}
}

func (s *synapseE2E) exec(u, sql string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		s.t.Fatalf("exec: %v", err)
	}
}

// query returns the rows of a query as strings (NULL as "NULL").
func (s *synapseE2E) query(u, sql string) [][]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close(context.Background())
	// The simple protocol returns every value as text, as psql shows it.
	rows, err := c.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		s.t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := rows.RawValues()
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// masDump is the MAS database as pg_dump prints it, without the provider
// rows (`mas-cli config sync` writes them and the runbook keeps them).
func (s *synapseE2E) masDump() string {
	s.t.Helper()
	out, err := exec.Command("pg_dump", "--no-owner", "--restrict-key=runbooktest", "--exclude-table-data=upstream_oauth_providers", "--dbname="+s.masURL).Output()
	if err != nil {
		s.t.Fatalf("pg_dump: %v", err)
	}
	return string(out)
}

func (s *synapseE2E) marker(name string) { s.write(filepath.Join(s.state, name), "", 0o644) }

func (s *synapseE2E) stateOf(service string) string {
	b, _ := os.ReadFile(filepath.Join(s.state, service))
	return strings.TrimSpace(string(b))
}

func (s *synapseE2E) calls() []string {
	b, _ := os.ReadFile(filepath.Join(s.state, "calls"))
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// e2eEvent is what the test reads of the --json events.
type e2eEvent struct {
	Type    string          `json:"type"`
	RunID   string          `json:"run_id"`
	Step    string          `json:"step"`
	State   string          `json:"state"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Outputs json.RawMessage `json:"outputs"`
}

type e2eResult struct {
	code   int
	id     string
	events []e2eEvent
	stderr string
}

func (r e2eResult) finished() e2eEvent {
	for _, e := range r.events {
		if e.Type == "run_finished" {
			return e
		}
	}
	return e2eEvent{}
}

func (r e2eResult) failedSteps() []string {
	var out []string
	for _, e := range r.events {
		if e.Type == "step_failed" || e.Type == "undo_failed" {
			out = append(out, e.Type+" "+e.Step+": "+e.Error)
		}
	}
	return out
}

// runbook runs the binary with the machine's state directory and config.
func (s *synapseE2E) runbook(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+s.bin, "XDG_CONFIG_HOME="+filepath.Join(s.dir, "config"),
		"RUNBOOK_STATE_DIR="+filepath.Join(s.dir, "state"))
	return cmd
}

// apply runs `runbook apply` on the shipped runbook with the variables in
// a file, as an operator would; when the run waits at the approval it
// calls atApproval, then approves (or rejects) with `runbook approve`.
func (s *synapseE2E) apply(atApproval func(), reject bool) e2eResult {
	s.t.Helper()
	vars, err := json.Marshal(s.vars)
	if err != nil {
		s.t.Fatal(err)
	}
	varFile := filepath.Join(s.dir, "vars.json")
	s.write(varFile, string(vars), 0o600)
	rb, err := filepath.Abs("synapse-to-mas.hcl")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := s.runbook(ctx, "apply", rb, "--auto-approve", "--json", "--var-file", varFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	var res e2eResult
	var mu sync.Mutex
	waiting := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e e2eEvent
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			mu.Lock()
			res.events = append(res.events, e)
			if res.id == "" {
				res.id = e.RunID
			}
			mu.Unlock()
			if e.Type == "step_started" && e.Step == "go" {
				waiting <- e.RunID
			}
		}
	}()
	select {
	case id := <-waiting:
		if atApproval != nil {
			atApproval()
		}
		args := []string{"approve", id, "go"}
		if reject {
			args = append(args, "--reject")
		}
		if out, err := s.runbook(ctx, args...).CombinedOutput(); err != nil {
			s.t.Fatalf("runbook approve: %v\n%s", err, out)
		}
	case <-done:
	}
	<-done
	err = cmd.Wait()
	res.code = cmd.ProcessState.ExitCode()
	if err != nil && res.code < 0 {
		s.t.Fatalf("apply: %v\n%s", err, stderr.String())
	}
	res.stderr = stderr.String()
	return res
}

// rollback runs `runbook rollback RUN`.
func (s *synapseE2E) rollback(id string, extra ...string) e2eResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := s.runbook(ctx, append([]string{"rollback", id, "--auto-approve", "--json"}, extra...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	res := e2eResult{code: cmd.ProcessState.ExitCode(), id: id, stderr: stderr.String()}
	for _, line := range bytes.Split(stdout.Bytes(), []byte("\n")) {
		var e e2eEvent
		if json.Unmarshal(line, &e) == nil {
			res.events = append(res.events, e)
		}
	}
	return res
}

// holdSynapseLock takes a lock on a Synapse table, as a live Synapse does,
// until the test ends.
func (s *synapseE2E) holdSynapseLock(mode string) {
	s.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.synURL)
	if err != nil {
		s.t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE devices IN "+mode+" MODE"); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = tx.Rollback(ctx); c.Close(ctx) })
}

// wantRolledBack checks that a run left everything as it found it: the
// homeserver config, MAS (pg_dump), Synapse running.
func (s *synapseE2E) wantRolledBack(what, masBefore string) {
	s.t.Helper()
	if b, _ := os.ReadFile(s.hs); !bytes.Equal(b, s.hsBefore) {
		s.t.Errorf("%s: homeserver.yaml is not the original:\n%s", what, b)
	}
	if d := cmp.Diff(masBefore, s.masDump()); d != "" {
		s.t.Errorf("%s: MAS differs from before the run (-before +after):\n%s", what, d)
	}
	if st := s.stateOf("synapse"); st != "running" {
		s.t.Errorf("%s: Synapse is %s, want running", what, st)
	}
	if st := s.stateOf("mas"); st != "stopped" {
		s.t.Errorf("%s: MAS is %s, want stopped", what, st)
	}
}

func buildRunbook(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "runbook")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/runbook").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func verifyServer(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/_matrix/client/v3/login"
}

// TestSynapseToMASRunbook runs the shipped runbook to the end, checks every
// migrated row, rolls the run back; then injects a failure at each step
// and checks that the automatic rollback leaves everything as it was.
func TestSynapseToMASRunbook(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-ins are shell scripts")
	}
	if _, err := exec.LookPath("pg_dump"); err != nil {
		testenv.Unavailable(t, "pg_dump: %v", err)
	}
	if _, err := exec.LookPath("psql"); err != nil {
		testenv.Unavailable(t, "psql: %v", err)
	}
	bin := buildRunbook(t)

	t.Run("migrate and roll back", func(t *testing.T) {
		t.Parallel()
		s := newSynapseE2E(t, bin, verifyServer(t, http.StatusOK))
		masBefore := s.masDump()
		res := s.apply(nil, false)
		if f := res.finished(); res.code != 0 || f.State != "succeeded" {
			t.Fatalf("apply: exit %d, %s %s\n%v\n%s", res.code, f.State, f.Error, res.failedSteps(), res.stderr)
		}
		s.wantMigrated(res)
		if b, _ := os.ReadFile(s.hs); !strings.Contains(string(b), "matrix_authentication_service:") {
			t.Errorf("homeserver.yaml was not switched to MAS:\n%s", b)
		}
		if s.stateOf("synapse") != "running" || s.stateOf("mas") != "running" {
			t.Errorf("after the run: Synapse %s, MAS %s; want both running", s.stateOf("synapse"), s.stateOf("mas"))
		}
		for _, f := range []string{"synapse." + res.id + ".dump", "mas." + res.id + ".dump", "homeserver.yaml." + res.id, "done." + res.id} {
			if _, err := os.Stat(filepath.Join(s.backup, f)); err != nil {
				t.Errorf("backup dir: %v", err)
			}
		}
		wantCalls := []string{"stop_synapse ", "mas-cli config sync --config " + s.vars["mas_config"].(string), "start_mas ", "start_synapse "}
		if d := cmp.Diff(wantCalls, s.calls()); d != "" {
			t.Errorf("stand-in calls (-want +got):\n%s", d)
		}

		rb := s.rollback(res.id)
		if f := rb.finished(); rb.code != 0 {
			t.Fatalf("rollback: exit %d, %s %s\n%v\n%s", rb.code, f.State, f.Error, rb.failedSteps(), rb.stderr)
		}
		s.wantRolledBack("after rollback", masBefore)
		if got := s.query(s.masURL, `SELECT count(*) FROM upstream_oauth_providers`); got[0][0] != "1" {
			t.Errorf("the synced provider was not kept: %v", got)
		}
	})

	for _, tc := range []struct {
		step  string
		setup func(s *synapseE2E) (atApproval func(), reject bool)
	}{
		{"preflight", func(s *synapseE2E) (func(), bool) {
			s.exec(s.synURL, `INSERT INTO users (name, creation_ts) VALUES ('nosigil:example.com', 1600000000)`)
			return nil, false
		}},
		{"backup", func(s *synapseE2E) (func(), bool) {
			s.write(filepath.Join(s.dir, "not-a-dir"), "", 0o644)
			s.vars["backup_dir"] = filepath.Join(s.dir, "not-a-dir", "backups")
			return nil, false
		}},
		{"go", func(*synapseE2E) (func(), bool) { return nil, true }},
		{"stop_synapse", func(s *synapseE2E) (func(), bool) { s.marker("fail-stop_synapse"); return nil, false }},
		{"mas_config_sync", func(s *synapseE2E) (func(), bool) { s.marker("fail-mas_config_sync"); return nil, false }},
		// Synapse still up and reading: even the dry run's share lock fails.
		{"dry_run", func(s *synapseE2E) (func(), bool) {
			return func() { s.holdSynapseLock("ACCESS EXCLUSIVE") }, false
		}},
		// Synapse still up and writing: the dry run passes, the real run's
		// exclusive lock fails.
		{"migrate", func(s *synapseE2E) (func(), bool) {
			return func() { s.holdSynapseLock("ROW EXCLUSIVE") }, false
		}},
		{"homeserver_mas", func(s *synapseE2E) (func(), bool) {
			// The config is a symlink, which core.file refuses to write through.
			real := s.hs + ".real"
			if err := os.Rename(s.hs, real); err != nil {
				s.t.Fatal(err)
			}
			if err := os.Symlink(real, s.hs); err != nil {
				s.t.Fatal(err)
			}
			return nil, false
		}},
		{"start_mas", func(s *synapseE2E) (func(), bool) { s.marker("fail-start_mas"); return nil, false }},
		{"start_synapse", func(s *synapseE2E) (func(), bool) { s.marker("fail-start_synapse-once"); return nil, false }},
		{"verify", func(s *synapseE2E) (func(), bool) {
			s.vars["verify_url"] = verifyServer(s.t, http.StatusBadGateway)
			return nil, false
		}},
		{"done", func(s *synapseE2E) (func(), bool) { s.marker("plant-done-link"); return nil, false }},
	} {
		t.Run("failure at "+tc.step, func(t *testing.T) {
			t.Parallel()
			s := newSynapseE2E(t, bin, verifyServer(t, http.StatusOK))
			masBefore := s.masDump()
			atApproval, reject := tc.setup(s)
			res := s.apply(atApproval, reject)
			f := res.finished()
			if res.code != 2 || f.State != "rolled_back" {
				t.Fatalf("apply: exit %d, state %s, want 2 rolled_back\n%v\n%s", res.code, f.State, res.failedSteps(), res.stderr)
			}
			if failed := res.failedSteps(); len(failed) != 1 || !strings.HasPrefix(failed[0], "step_failed "+tc.step+":") {
				t.Errorf("failed steps %q, want only %s", failed, tc.step)
			}
			s.wantRolledBack("after the failure at "+tc.step, masBefore)
		})
	}
}

// wantMigrated checks every migrated user, device and token.
func (s *synapseE2E) wantMigrated(res e2eResult) {
	t := s.t
	t.Helper()
	ts := func(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05+00") }
	tms := func(ms int64) string {
		return strings.TrimSuffix(time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000"), ".000") + "+00"
	}
	check := func(what string, want [][]string, sql string) {
		t.Helper()
		if d := cmp.Diff(want, s.query(s.masURL, sql)); d != "" {
			t.Errorf("%s (-want +got):\n%s", what, d)
		}
	}
	check("users", [][]string{
		{"123", ts(1600000400), "NULL", "f", "t", "NULL"},
		{"alice", ts(1600000000), "NULL", "t", "f", "NULL"},
		{"bob", ts(1600000100), "NULL", "f", "f", "NULL"},
		{"carol", ts(1600000200), "NULL", "f", "f", ts(1600000200)},
		{"dave", ts(1600000300), ts(1600000300), "f", "f", "NULL"},
	}, `SELECT username, created_at, locked_at, can_request_admin, is_guest, deactivated_at FROM users ORDER BY username`)
	check("user_passwords", [][]string{
		{"alice", "$2b$12$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1"},
		{"carol", "$2b$12$ccccccccccccccccccccccccccccccccccccccccccccccccccccc", "1"},
		{"dave", "$2b$12$ddddddddddddddddddddddddddddddddddddddddddddddddddddd", "1"},
	}, `SELECT u.username, p.hashed_password, p.version FROM user_passwords p JOIN users u USING (user_id) ORDER BY 1`)
	check("user_emails", [][]string{
		{"alice", "alice@mail.example", tms(1600000001000)},
		{"bob", "bob@mail.example", tms(1600000101000)},
	}, `SELECT u.username, e.email, e.created_at FROM user_emails e JOIN users u USING (user_id) ORDER BY 1`)
	check("user_unsupported_third_party_ids", [][]string{{"bob", "msisdn", "447700900123"}},
		`SELECT u.username, x.medium, x.address FROM user_unsupported_third_party_ids x JOIN users u USING (user_id)`)
	check("upstream_oauth_links", [][]string{{"bob", uuidOf(ulid.MustParseStrict(e2eProvider)), "gh-1234"}},
		`SELECT u.username, l.upstream_oauth_provider_id, l.subject FROM upstream_oauth_links l JOIN users u USING (user_id)`)
	// Devices of alice and bob; not the hidden one, not those of the
	// deactivated and guest users; plus the session of the deviceless token.
	check("compat_sessions", [][]string{
		{"alice", "ALICEPHONE", "Element Android", "t", tms(1700000000000), "192.0.2.1", "Element/1.6"},
		{"alice", "ALICEWEB", "Element Web", "t", tms(1700000100000), "NULL", "Mozilla/5.0"},
		{"alice", "NULL", "NULL", "f", "NULL", "NULL", "NULL"},
		{"bob", "BOBDEV", "NULL", "f", tms(1700000200000), "2001:db8::1", "curl"},
	}, `SELECT u.username, coalesce(s.device_id, 'NULL'), coalesce(s.human_name, 'NULL'), s.is_synapse_admin, s.last_active_at,
  host(s.last_active_ip), s.user_agent FROM compat_sessions s JOIN users u USING (user_id) ORDER BY 1, 2`)
	// Tokens: not the puppet token, not those of the deactivated or guest
	// users.
	check("compat_access_tokens", [][]string{
		{"syt_alice_api", "alice", "NULL", tms(1690000000000), "NULL"},
		{"syt_alice_phone", "alice", "ALICEPHONE", tms(1700000000000), "NULL"},
		{"syt_alice_web", "alice", "ALICEWEB", tms(1700000100000), tms(1700000300000)},
		{"syt_bob", "bob", "BOBDEV", tms(1700000200000), "NULL"},
	}, `SELECT t.access_token, u.username, coalesce(s.device_id, 'NULL'), t.created_at, t.expires_at
FROM compat_access_tokens t JOIN compat_sessions s USING (compat_session_id) JOIN users u USING (user_id) ORDER BY 1`)
	check("compat_refresh_tokens", [][]string{{"syr_alice_web", "syt_alice_web", "ALICEWEB", "t"}},
		`SELECT r.refresh_token, t.access_token, s.device_id, r.compat_session_id = t.compat_session_id
FROM compat_refresh_tokens r JOIN compat_access_tokens t USING (compat_access_token_id) JOIN compat_sessions s ON s.compat_session_id = r.compat_session_id`)
	var out struct {
		Migrated map[string]int64 `json:"migrated"`
	}
	if err := json.Unmarshal(res.finished().Outputs, &out); err != nil {
		t.Fatalf("outputs: %v", err)
	}
	want := map[string]int64{"users": 5, "threepids": 3, "external_ids": 1, "nonrefreshable_access_tokens": 3, "refreshable_tokens": 1, "devices": 3}
	if d := cmp.Diff(want, out.Migrated); d != "" {
		t.Errorf("output migrated (-want +got):\n%s", d)
	}
}

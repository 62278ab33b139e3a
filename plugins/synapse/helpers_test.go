package synapse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m)) }

const (
	testServer = "example.com"
	// Provider ids of the MAS test config (ULIDs) and their synapse_idp_id.
	provGitHub = "01JAAAAAAAAAAAAAAAAAAAAAAA"
	provGoogle = "01JBBBBBBBBBBBBBBBBBBBBBBB"
)

// world is one Synapse database and one MAS database with configs.
type world struct {
	t         testing.TB
	synURL    string
	masURL    string
	synConfig string
	synExtra  string // a second Synapse config file, merged over synConfig ("" = none)
	masConfig string
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{t: t}
	w.synURL = testenv.PostgresWith(t, testenv.PGDatabase{CollateC: true, Init: readFile(t, "testdata/synapse.sql")})
	w.masURL = testenv.PostgresWith(t, testenv.PGDatabase{Init: readFile(t, "testdata/mas.sql")})
	w.exec(w.masURL, `INSERT INTO upstream_oauth_providers
  (upstream_oauth_provider_id, issuer, scope, client_id, token_endpoint_auth_method, created_at)
VALUES ($1, 'https://github.example', 'openid', 'gh', 'client_secret_basic', now()),
       ($2, 'https://google.example', 'openid', 'gg', 'client_secret_basic', now())`,
		mustULID(provGitHub), mustULID(provGoogle))
	w.writeConfigs("", "")
	return w
}

func mustULID(s string) any {
	u, err := parseULID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// writeConfigs writes homeserver.yaml (plus extra YAML) and mas.yaml
// (plus extra YAML; a "passwords:" in masExtra replaces the default).
func (w *world) writeConfigs(synExtra, masExtra string) {
	w.t.Helper()
	dir := w.t.TempDir()
	u, err := url.Parse(w.synURL)
	if err != nil {
		w.t.Fatal(err)
	}
	syn := fmt.Sprintf(`server_name: %s
database:
  name: psycopg2
  args:
    user: %s
    host: %s
    port: %s
    dbname: %s
password_config:
  pepper: "pep"
oidc_providers:
  - idp_id: github
    issuer: https://github.example
    client_id: gh
  - idp_id: google
    issuer: https://google.example
    client_id: gg
`, testServer, u.User.Username(), u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"))
	passwords := `passwords:
  schemes:
    - version: 1
      algorithm: bcrypt
      unicode_normalization: true
      secret: "pep"
    - version: 2
      algorithm: argon2id
`
	if strings.Contains(masExtra, "passwords:") {
		passwords = ""
	}
	providers := fmt.Sprintf(`upstream_oauth2:
  providers:
    - id: %s
      synapse_idp_id: oidc-github
    - id: %s
      synapse_idp_id: oidc-google
`, provGitHub, provGoogle)
	if strings.Contains(masExtra, "upstream_oauth2:") {
		providers = ""
	}
	mas := fmt.Sprintf(`matrix:
  homeserver: %s
database:
  uri: %q
%s%s%s`, testServer, w.masURL, passwords, providers, masExtra)
	w.synConfig = filepath.Join(dir, "homeserver.yaml")
	w.masConfig = filepath.Join(dir, "mas.yaml")
	if err := os.WriteFile(w.synConfig, []byte(syn), 0o600); err != nil {
		w.t.Fatal(err)
	}
	w.synExtra = ""
	if synExtra != "" {
		w.synExtra = filepath.Join(dir, "extra.yaml")
		if err := os.WriteFile(w.synExtra, []byte(synExtra), 0o600); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := os.WriteFile(w.masConfig, []byte(mas), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) conn(u string) *pgx.Conn {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		w.t.Fatalf("connect: %v", err)
	}
	return c
}

func (w *world) exec(u, sql string, args ...any) {
	w.t.Helper()
	c := w.conn(u)
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("exec %q: %v", firstLine(sql), err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// masTx opens a transaction on the MAS database, rolled back and closed
// when the test ends.
func (w *world) masTx() pgx.Tx {
	w.t.Helper()
	ctx := context.Background()
	c := w.conn(w.masURL)
	tx, err := c.Begin(ctx)
	if err != nil {
		c.Close(ctx)
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		_ = tx.Rollback(ctx)
		c.Close(ctx)
	})
	return tx
}

// syn runs SQL on the Synapse database.
func (w *world) syn(sql string, args ...any) { w.t.Helper(); w.exec(w.synURL, sql, args...) }

// query returns the rows of a MAS query as strings (NULL as "NULL").
func (w *world) query(sql string, args ...any) [][]string {
	w.t.Helper()
	c := w.conn(w.masURL)
	defer c.Close(context.Background())
	rows, err := c.Query(context.Background(), sql, args...)
	if err != nil {
		w.t.Fatalf("query %q: %v", firstLine(sql), err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			w.t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = render(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return out
}

func render(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case [16]byte:
		return fmt.Sprintf("%x", v)
	}
	return fmt.Sprint(v)
}

func (w *world) inputs(extra map[string]cty.Value) cty.Value {
	files := []cty.Value{cty.StringVal(w.synConfig)}
	if w.synExtra != "" {
		files = append(files, cty.StringVal(w.synExtra))
	}
	vals := map[string]cty.Value{
		"synapse_config": cty.ListVal(files),
		"mas_config":     cty.StringVal(w.masConfig),
	}
	for k, v := range extra {
		vals[k] = v
	}
	return cty.ObjectVal(vals)
}

// recorder is an sdk.Events that keeps everything.
type recorder struct {
	mu          sync.Mutex // guards the fields below
	logs        []string
	progress    map[string]int64 // unit -> last current
	checkpoints [][]byte
}

func (r *recorder) Log(l sdk.Level, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, l.String()+": "+msg)
}

func (r *recorder) Progress(cur, total int64, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.progress == nil {
		r.progress = map[string]int64{}
	}
	r.progress[unit] = cur
}

func (r *recorder) Checkpoint(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkpoints = append(r.checkpoints, append([]byte(nil), b...))
	return nil
}

// migrate runs synapse.migrate through sdk.Local.
func (w *world) migrate(extra map[string]cty.Value) (*sdk.Result, *recorder, error) {
	w.t.Helper()
	rec := &recorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := sdk.Local(New()).Apply(ctx, "migrate", &sdk.ApplyRequest{Inputs: w.inputs(extra)}, rec)
	return res, rec, err
}

// mustMigrate runs a real migration that must succeed.
func (w *world) mustMigrate() (*sdk.Result, *recorder) {
	w.t.Helper()
	res, rec, err := w.migrate(nil)
	if err != nil {
		w.t.Fatalf("migrate: %v", err)
	}
	return res, rec
}

func (w *world) check(extra map[string]cty.Value) (*sdk.Result, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return sdk.Local(New()).Apply(ctx, "check", &sdk.ApplyRequest{Inputs: w.inputs(extra)}, &recorder{})
}

func (w *world) undo(res *sdk.Result) error {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return sdk.Local(New()).Undo(ctx, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), Outputs: res.Outputs, UndoState: res.UndoState}, &recorder{})
}

// counts reads an output map of numbers.
func counts(t *testing.T, res *sdk.Result, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, v := range res.Outputs.GetAttr(name).AsValueMap() {
		n, _ := v.AsBigFloat().Int64()
		out[k] = n
	}
	return out
}

// wantKind checks an error's classification.
func wantKind(t *testing.T, err error, kind sdk.Kind, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s error containing %q", kind, contains)
	}
	var e *sdk.Error
	if !errors.As(err, &e) || e.Kind != kind {
		t.Fatalf("error %v: kind %v, want %s", err, sdk.Classify(err).Kind, kind)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not contain %q", err, contains)
	}
}

// masState is the catalog and contents summary of the MAS database.
type masState struct {
	Constraints []string
	Indexes     []string
	Rows        map[string]int64
}

func (w *world) state() masState {
	w.t.Helper()
	var s masState
	for _, r := range w.query(`SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1`) {
		s.Constraints = append(s.Constraints, r[0])
	}
	for _, r := range w.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`) {
		s.Indexes = append(s.Indexes, r[0])
	}
	s.Rows = map[string]int64{}
	c := w.conn(w.masURL)
	defer c.Close(context.Background())
	var parts []string
	for _, r := range w.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`) {
		parts = append(parts, fmt.Sprintf("SELECT %s, count(*) FROM %s", quoteLiteral(r[0]), pgx.Identifier{r[0]}.Sanitize()))
	}
	rows, err := c.Query(context.Background(), strings.Join(parts, " UNION ALL "))
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			w.t.Fatal(err)
		}
		s.Rows[name] = n
	}
	if err := rows.Err(); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func diffState(t *testing.T, what string, want, got masState) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: MAS state differs (-want +got):\n%s", what, d)
	}
}

// ms is a Synapse millisecond timestamp for a date.
func ms(s string) int64 {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return tm.UnixMilli()
}

func ts(s string) string {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm.UTC().Format(time.RFC3339Nano)
}

func testenvBadPassword(t *testing.T) string { return testenv.PostgresBadPasswordURL(t) }

func passwordOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	pw, _ := p.User.Password()
	return pw
}

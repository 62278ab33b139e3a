package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/nextcloud"
)

// acks records what the consumer did with each message.
type acks struct{ acked, nacked int }

func (a *acks) Ack(bool) error        { a.acked++; return nil }
func (a *acks) Nack(bool, bool) error { a.nacked++; return nil }

// TestConsumeIntoCampaign: with -campaign, a requested migration becomes a
// target of the campaign (its password sealed, its lock key the
// migration's) and its message is acked; a redelivered message adds
// nothing; one whose account is unknown is dropped and its document
// marked failed, and nothing is added.
func TestConsumeIntoCampaign(t *testing.T) {
	url := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := journal.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "state.key")
	if _, err := journal.NewKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	t.Setenv(journal.EnvStateKeyFile, keyFile)
	t.Setenv("RUNBOOK_STATE", url)
	rb := filepath.Join(dir, "import.hcl")
	var src strings.Builder
	for _, v := range []string{"nextcloud_url", "login", "source_path", "instance", "migration_id", "tracking_dir"} {
		src.WriteString("variable \"" + v + "\" {\n  type = string\n}\n")
	}
	src.WriteString("variable \"password\" {\n  type      = string\n  sensitive = true\n}\nstep \"core.noop\" \"a\" {\n}\n")
	writeFile(t, rb, src.String())
	track := filepath.Join(dir, "track")
	const pw = "consume-campaign-canary-pw"
	writeFile(t, filepath.Join(track, "accounts", "alice.example.net.json"),
		`{"auth": {"url": "https://nc.example.net", "login": "alice", "password": "`+pw+`"}}`)
	writeFile(t, filepath.Join(track, "migrations", "alice.example.net", "m1.json"), `{"status": "pending"}`)
	writeFile(t, filepath.Join(track, "migrations", "bob.example.net", "m2.json"), `{"status": "pending"}`)
	tr, err := nextcloud.OpenTracking(track)
	if err != nil {
		t.Fatal(err)
	}

	k, err := openCampaignSink(ctx, "moves", rb)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	var out, errs syncBuf
	c := &consumer{o: consumeOptions{runbook: rb, trackingDir: track, campaign: "moves"}, tr: tr, stdout: &out, stderr: &errs,
		out: view.NewAsyncWriter(&out), campaign: k}

	m1 := migrationMsg{MigrationID: "m1", WorkplaceFqdn: "alice.example.net", SourcePath: "/docs"}
	var a acks
	c.enqueue(ctx, m1, &a)
	c.enqueue(ctx, m1, &a) // redelivered
	if a.acked != 2 || a.nacked != 0 {
		t.Fatalf("acked %d, nacked %d; want both acked\n%s%s", a.acked, a.nacked, out.String(), errs.String())
	}
	if got := out.String(); !strings.Contains(got, "migration m1 of alice.example.net added to campaign moves") ||
		!strings.Contains(got, "migration m1 of alice.example.net already in campaign moves") {
		t.Fatalf("output:\n%s", got)
	}
	var b acks
	c.enqueue(ctx, migrationMsg{MigrationID: "m2", WorkplaceFqdn: "bob.example.net"}, &b)
	if b.acked != 0 || b.nacked != 1 {
		t.Fatalf("unknown account: acked %d, nacked %d; want it dropped", b.acked, b.nacked)
	}
	doc := map[string]any{}
	raw, _ := os.ReadFile(filepath.Join(track, "migrations", "bob.example.net", "m2.json"))
	if err := json.Unmarshal(raw, &doc); err != nil || doc["status"] != "failed" || !strings.Contains(doc["failure_reason"].(string), "account of bob.example.net") {
		t.Fatalf("document of the dropped message: %s (%v)", raw, err)
	}

	st, err := k.store.Status(ctx, "moves")
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 1 {
		t.Fatalf("campaign moves: %d targets, want 1: %+v", st.Total, st)
	}
	var key, vars string
	if err := k.db.Pool().QueryRow(ctx, `SELECT lock_key, vars::text FROM runbook.targets`).Scan(&key, &vars); err != nil {
		t.Fatal(err)
	}
	if key != "migration:m1" || strings.Contains(vars, pw) || !strings.Contains(vars, "/docs") {
		t.Fatalf("target: lock key %q, vars %s; want migration:m1, the source path, the password sealed", key, vars)
	}
	if st.State != campaign.StateRunning {
		t.Fatalf("campaign state %s, want running (its workers run the target)", st.State)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

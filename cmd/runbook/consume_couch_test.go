package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/nextcloud"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// couchDoc reads (or, with body, writes) a document of a real CouchDB.
func couchDoc(t *testing.T, db *testenv.CouchDB, method, path string, body any) (int, map[string]any) {
	t.Helper()
	st, m, err := couchTry(db, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return st, m
}

// couchTry is couchDoc for goroutines other than the test's, which may
// not end the test.
func couchTry(db *testenv.CouchDB, method, path string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, db.URL+path, rd)
	req.SetBasicAuth(db.Username, db.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	m := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, nil
}

// TestConsumeCouchDB runs `runbook consume -tracking couchdb://…` against
// real RabbitMQ and pouchdb-server, with the tracking document and the
// account where nextcloud.request_migration keeps them in CouchDB (no
// tracking directory at all): the credentials come from the account the
// document names (the message's accountId is ignored), the heartbeat,
// status and progress are written back while another writer updates the
// same document (revisions: 409 → read again), a consumer stopped while
// the run waits is resumed by the redelivered message (one run), a
// consumer stopped again has the run resumed by the next one at start
// (the heartbeat in CouchDB gone stale), and
// neither the Nextcloud password nor CouchDB's is in any file or output.
func TestConsumeCouchDB(t *testing.T) {
	const pw = "consume-couch-canary-pw-31"
	nc, rmq := consumePeers(t, pw)
	db := testenv.StartCouchDB(t)

	dir := t.TempDir()
	t.Chdir(dir)
	rbPath := filepath.Join(dir, "import.hcl")
	rb := strings.NewReplacer(
		"variable \"tracking_dir\" {\n  type = string\n}", "variable \"couchdb_url\" {\n  type      = string\n  sensitive = true\n}",
		"tracking_dir = var.tracking_dir", "couchdb_url = var.couchdb_url").Replace(consumeRunbook)
	if !strings.Contains(rb, "var.couchdb_url") {
		t.Fatal("runbook not rewritten")
	}
	if err := os.WriteFile(rbPath, []byte(rb), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	const instance = "erin.example.net"
	const migDB = "/erin-example-net%2Fio-cozy-nextcloud-migrations/"
	p := sdk.Local(nextcloud.New())
	res, _ := sdktest.MustApply(t, p, "request_migration", sdktest.Object(map[string]any{
		"url": nc.URL, "login": "alice@example.net", "password": pw, "instance": instance,
		"couchdb_url": db.AuthURL(), "amqp_url": rmq.URL}))
	id := res.Outputs.GetAttr("migration_id").AsString()
	doc := func() map[string]any {
		_, d := couchDoc(t, db, http.MethodGet, migDB+id, nil)
		return d
	}
	waitStatus := func(t *testing.T, want string, out *syncBuf) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if d := doc(); d["status"] == want {
				return d
			}
		}
		t.Fatalf("migration %s never %s: %v\n%s", id, want, doc(), out.String())
		return nil
	}
	tracking := "couchdb://" + strings.TrimPrefix(db.AuthURL(), "http://")
	consume := func(t *testing.T, heartbeat time.Duration) (*syncBuf, func()) {
		o := consumeOptions{queue: "migration.nextcloud.couch", runbook: rbPath, tracking: tracking, exchange: "migration",
			prefetch: 2, heartbeat: heartbeat,
			vars: lang.VarSources{Args: []string{"target_dir=" + target, "gate=true"}},
			rf:   runFlags{parallelism: 4, stateDir: filepath.Join(dir, ".runbook")}}
		return startConsumer(t, rmq.URL, o)
	}
	publish := func(t *testing.T) {
		t.Helper()
		conn, err := amqp.Dial(rmq.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		// A message naming another account: never read.
		body, _ := json.Marshal(map[string]any{"migrationId": id, "workplaceFqdn": instance, "accountId": "nextcloud-mallory.example.net"})
		if err := ch.PublishWithContext(context.Background(), "migration", "nextcloud.migration.requested", false, false,
			amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, Body: body}); err != nil {
			t.Fatal(err)
		}
	}

	// Another writer (cozy-stack) updates the document meanwhile, with
	// revisions: the consumer's and the runbook's writes must not lose it.
	// It stops before pouchdb-server does, however the test ends.
	var external atomic.Int64
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	var writerOnce sync.Once
	endWriter := func() { writerOnce.Do(func() { close(stopWriter); <-writerDone }) }
	t.Cleanup(endWriter)
	go func() {
		defer close(writerDone)
		for n := int64(1); ; n++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(15 * time.Millisecond):
			}
			_, d, err := couchTry(db, http.MethodGet, migDB+id, nil)
			if err != nil {
				continue
			}
			d["external_writes"] = n
			if st, _, _ := couchTry(db, http.MethodPut, migDB+id, d); st == http.StatusCreated {
				external.Store(n)
			}
		}
	}()

	// The request was published before the queue existed: send it again
	// once the consumer listens, as an operator would.
	out1, stop1 := consume(t, 100*time.Millisecond)
	publish(t)
	waitStatus(t, "running", out1)
	// A heartbeat comes every 100 ms, each one under the lock the run's
	// steps and the other writer's revisions contend for.
	for deadline := time.Now().Add(30 * time.Second); doc()["last_heartbeat_at"] == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no heartbeat while the run waited: %v\n%s", doc(), out1.String())
			break
		}
	}
	runFile := filepath.Join(dir, ".runbook", "consume-runs", id)
	first, err := os.ReadFile(runFile)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(first)), " "+instance) {
		t.Fatalf("run file: %q %v\n%s", first, err, out1.String())
	}
	stop1() // the run is interrupted at its approval, its message acked
	if d := doc(); d["status"] != "running" {
		t.Errorf("a stopped consumer changed the status: %v", d)
	}

	// The same message again: the next consumer resumes the run (its
	// heartbeat is fresh, so it is the message, not the recovery at
	// start, that resumes it).
	publish(t)
	out2, stop2 := consume(t, 20*time.Second)
	defer stop2()
	waitOutput(out2, "migration "+id+": resuming run", time.Minute)
	if strings.Contains(out2.String(), "its consumer stopped") || !strings.Contains(out2.String(), "resuming run "+strings.Fields(string(first))[0]) {
		t.Fatalf("not resumed by the message:\n%s", out2.String())
	}
	// Stopped again before the approval; its heartbeat goes stale: the
	// next consumer resumes the run at start, from CouchDB's document.
	stop2()
	time.Sleep(400 * time.Millisecond)
	out3, stop3 := consume(t, 100*time.Millisecond)
	defer stop3()
	// The recovery announces itself ("its consumer stopped"), then reads
	// the account from CouchDB and opens the run before it says "resuming
	// run": wait for that line itself (on a loaded machine the consumer
	// says "waiting for migrations" in between).
	resumed := "migration " + id + ": resuming run " + strings.Fields(string(first))[0]
	waitOutput(out3, resumed, time.Minute)
	if o := out3.String(); !strings.Contains(o, resumed) || !strings.Contains(o, "migration "+id+": its consumer stopped; resuming") {
		t.Fatalf("not recovered at start:\n%s\nthe consumer's goroutines:\n%s", o, consumerStacks())
	}
	ad := filepath.Join(dir, ".runbook", "approvals", strings.Fields(string(first))[0])
	_ = os.MkdirAll(ad, 0o700)
	if err := os.WriteFile(filepath.Join(ad, "gate.json"), []byte(`{"approved_by":"test","at":"2026-12-04T00:00:00Z","approved":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, "completed", out3)
	time.Sleep(100 * time.Millisecond)
	endWriter()
	d := doc()
	if prog, _ := d["progress"].(map[string]any); prog["files_imported"] != 2.0 || d["status"] != "completed" || d["finished_at"] == nil {
		t.Errorf("document after the run: %v", d)
	}
	if got := d["external_writes"]; got != float64(external.Load()) || external.Load() == 0 {
		t.Errorf("another writer's change lost: %v, it wrote %d", got, external.Load())
	}
	if b, err := os.ReadFile(filepath.Join(target, id, "dir", "b #1.txt")); err != nil || string(b) != "b" {
		t.Errorf("copied file: %q %v", b, err)
	}
	if again, _ := os.ReadFile(runFile); string(again) != string(first) {
		t.Errorf("run %q replaced by %q", first, again)
	}
	if runs, _ := os.ReadDir(filepath.Join(dir, ".runbook", "runs")); len(runs) != 1 {
		t.Errorf("runs: %v", runs)
	}
	// The lock is looked at once the consumer stopped: until then its
	// heartbeat (every 100 ms, each one under the lock) may hold it.
	stop3()
	if _, l := couchDoc(t, db, http.MethodGet, migDB+"_local/runbook-nextcloud-lock", nil); l["_id"] != nil {
		t.Errorf("lock left behind: %v", l)
	}

	// Neither password is in any output or file the runs left.
	outs := out1.String() + out2.String() + out3.String()
	for _, secret := range []string{pw, db.Password} {
		if strings.Contains(outs, secret) {
			t.Errorf("the consumer printed a password:\n%s", outs)
		}
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a password", path)
			}
			return nil
		})
	}
}

// TestConsumeTrackingFlag: a store given twice, or as a URL of another
// kind, is refused before anything is consumed, without the password.
func TestConsumeTrackingFlag(t *testing.T) {
	for _, tc := range []struct {
		name          string
		tracking, dir string
		want          string
	}{
		{"both", "couchdb://admin:flag-secret-1@127.0.0.1:5984", "/tmp/x", "not both"},
		{"other scheme", "ftp://admin:flag-secret-1@127.0.0.1/", "", "couchdb://"},
		{"none", "", "", "-tracking"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuf
			err := runConsume(context.Background(), &out, &out, "amqp://guest:guest@127.0.0.1:1/",
				consumeOptions{queue: "q", runbook: "r.hcl", tracking: tc.tracking, trackingDir: tc.dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error()+out.String(), "flag-secret-1") {
				t.Errorf("err = %v, want %q without the password; output %q", err, tc.want, out.String())
			}
		})
	}
}

// waitOutput waits until out holds want, at most limit; it tells whether
// it came.
func waitOutput(out *syncBuf, want string, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); !strings.Contains(out.String(), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// consumerStacks are the stacks of the goroutines running consumer code,
// to tell where a consumer waits when a test gives up on it.
func consumerStacks() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "cmd/runbook.(*consumer)") || strings.Contains(g, "cmd/runbook.runConsume") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

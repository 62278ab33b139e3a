package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/nextcloud"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

const consumeRunbook = `variable "nextcloud_url" {
  type = string
}
variable "login" {
  type = string
}
variable "password" {
  type      = string
  sensitive = true
}
variable "source_path" {
  type = string
}
variable "instance" {
  type = string
}
variable "migration_id" {
  type = string
}
variable "tracking_dir" {
  type = string
}
variable "target_dir" {
  type = string
}
variable "gate" {
  type    = bool
  default = false
}
locals {
  doc = { tracking_dir = var.tracking_dir, instance = var.instance, migration_id = var.migration_id }
}
step "nextcloud.update_migration" "running" {
  with = merge(local.doc, { status = "running" })
}
step "core.approve" "gate" {
  when       = var.gate
  with       = { prompt = "go?" }
  depends_on = [step.running]
}
step "nextcloud.copy" "copy" {
  with       = { url = var.nextcloud_url, login = var.login, password = var.password, path = var.source_path, target_dir = "${var.target_dir}/${var.migration_id}" }
  depends_on = [step.gate]
}
step "nextcloud.update_migration" "done" {
  with = merge(local.doc, { status = "completed", files_imported = step.copy.outputs.files, bytes_imported = step.copy.outputs.bytes })
}
`

// TestConsumeChild is the consumer process TestConsume kills with SIGKILL;
// run alone it does nothing.
func TestConsumeChild(t *testing.T) {
	if os.Getenv("RUNBOOK_TEST_CONSUME_CHILD") == "" {
		t.Skip("the consumer process of TestConsume")
	}
	dir := os.Getenv("RUNBOOK_TEST_DIR")
	t.Chdir(dir)
	o := consumeOptions{queue: "migration.nextcloud.commands", runbook: os.Getenv("RUNBOOK_TEST_RUNBOOK"),
		trackingDir: os.Getenv("RUNBOOK_TEST_TRACK"), exchange: "migration", prefetch: 2, heartbeat: 100 * time.Millisecond,
		vars: lang.VarSources{Args: []string{"target_dir=" + os.Getenv("RUNBOOK_TEST_TARGET"), "gate=true"}},
		rf:   runFlags{parallelism: 4, stateDir: filepath.Join(dir, ".runbook")}}
	_ = runConsume(context.Background(), os.Stdout, os.Stderr, os.Getenv("RUNBOOK_TEST_AMQP"), o)
}

// syncBuf is a bytes.Buffer safe for the consumer's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// consumePeers starts the source (Apache mod_dav behind the Nextcloud
// front, holding a.txt and "dir/b #1.txt" of alice@example.net, password
// pw) and RabbitMQ.
func consumePeers(t *testing.T, pw string) (*testenv.NextcloudFront, *testenv.RabbitMQ) {
	ap := testenv.StartApacheDAV(t, "alice", "backend")
	for p, c := range map[string]string{"a.txt": "a", "dir/b #1.txt": "b"} {
		fp := filepath.Join(ap.Root, filepath.FromSlash(p))
		_ = os.MkdirAll(filepath.Dir(fp), 0o755)
		if err := os.WriteFile(fp, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ap.Own(t)
	nc := testenv.StartNextcloudFront(t, ap, "alice@example.net", pw)
	rmq := testenv.StartRabbitMQ(t)
	return nc, rmq
}

// TestConsume runs `runbook consume` against a real RabbitMQ: a migration
// requested with nextcloud.request_migration becomes a journaled run that
// copies the files (credentials from the account, not the message) and
// completes the tracking document; the same message delivered again starts
// no second run; a consumer killed with SIGKILL after it acked has its
// run resumed by the next consumer; the broker restarting while a run waits at an approval
// loses nothing and starts nothing twice; a cancel message interrupts a run
// waiting at an approval and marks the migration canceled, with heartbeats
// while it waited.
func TestConsume(t *testing.T) {
	const pw = "consume-canary-pw-77"
	nc, rmq := consumePeers(t, pw)

	dir := t.TempDir()
	// In a test binary the builtins run in-process: core.approve finds the
	// state directory from the working directory.
	t.Chdir(dir)
	rbPath := filepath.Join(dir, "import.hcl")
	if err := os.WriteFile(rbPath, []byte(consumeRunbook), 0o644); err != nil {
		t.Fatal(err)
	}
	track, target := filepath.Join(dir, "track"), filepath.Join(dir, "target")
	p := sdk.Local(nextcloud.New())
	request := func(t *testing.T, instance string) string {
		res, _ := sdktest.MustApply(t, p, "request_migration", sdktest.Object(map[string]any{
			"url": nc.URL, "login": "alice@example.net", "password": pw, "instance": instance,
			"tracking_dir": track, "amqp_url": rmq.URL}))
		return res.Outputs.GetAttr("migration_id").AsString()
	}
	doc := func(instance, id string) map[string]any {
		b, _ := os.ReadFile(filepath.Join(track, "migrations", instance, id+".json"))
		m := map[string]any{}
		_ = json.Unmarshal(b, &m)
		return m
	}
	waitStatus := func(t *testing.T, instance, id, want string, out *syncBuf) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if d := doc(instance, id); d["status"] == want {
				return d
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("migration %s never %s: %v\n%s", id, want, doc(instance, id), out.String())
		return nil
	}
	consume := func(t *testing.T, gate bool) (*syncBuf, func()) {
		o := consumeOptions{queue: "migration.nextcloud.commands", runbook: rbPath, trackingDir: track, exchange: "migration",
			prefetch: 2, heartbeat: 100 * time.Millisecond,
			vars: lang.VarSources{Args: []string{"target_dir=" + target, "gate=" + map[bool]string{true: "true", false: "false"}[gate]}},
			rf:   runFlags{parallelism: 4, stateDir: filepath.Join(dir, ".runbook")}}
		return startConsumer(t, rmq.URL, o)
	}

	// approveGate answers the gate step of a migration's run, as
	// `runbook approve RUN gate` does.
	approveGate := func(t *testing.T, id string) {
		t.Helper()
		runID, err := os.ReadFile(filepath.Join(track, "runs", id))
		if err != nil {
			t.Fatal(err)
		}
		ad := filepath.Join(dir, ".runbook", "approvals", strings.Fields(string(runID))[0])
		_ = os.MkdirAll(ad, 0o700)
		if err := os.WriteFile(filepath.Join(ad, "gate.json"), []byte(`{"approved_by":"test","at":"2026-12-04T00:00:00Z","approved":true}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	out, stop := consume(t, false)
	id := request(t, "alice.example.net")
	d := waitStatus(t, "alice.example.net", id, "completed", out)
	if prog, _ := d["progress"].(map[string]any); prog["files_imported"] != 2.0 {
		t.Errorf("progress = %v", d["progress"])
	}
	if b, err := os.ReadFile(filepath.Join(target, id, "dir", "b #1.txt")); err != nil || string(b) != "b" {
		t.Errorf("copied file: %q %v", b, err)
	}
	runID, err := os.ReadFile(filepath.Join(track, "runs", id))
	if err != nil {
		t.Fatal(err)
	}

	// The same message again (a redelivery): the finished run is not run twice.
	conn, err := amqp.Dial(rmq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	body, _ := json.Marshal(map[string]any{"migrationId": id, "workplaceFqdn": "alice.example.net", "accountId": "nextcloud-alice.example.net"})
	if err := ch.PublishWithContext(context.Background(), "migration", "nextcloud.migration.requested", false, false,
		amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, Body: body}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	runs, _ := os.ReadDir(filepath.Join(dir, ".runbook", "runs"))
	if len(runs) != 1 || !strings.Contains(string(runID), runs[0].Name()) {
		t.Errorf("runs after a redelivery: %v (first run %s)\n%s", runs, runID, out.String())
	}
	stop()
	if strings.Contains(out.String(), pw) {
		t.Errorf("the consumer printed the password:\n%s", out.String())
	}

	t.Run("broker restart mid-run", func(t *testing.T) {
		out, stop := consume(t, true)
		defer stop()
		id := request(t, "carol.example.net")
		waitStatus(t, "carol.example.net", id, "running", out)
		rmq.Restart(t) // the run waits at its approval meanwhile
		for i := 0; i < 200 && strings.Count(out.String(), "waiting for migrations") < 2; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		approveGate(t, id)
		waitStatus(t, "carol.example.net", id, "completed", out)
		if _, err := os.Stat(filepath.Join(target, id, "a.txt")); err != nil {
			t.Errorf("not copied: %v", err)
		}
		// The acked request is not delivered again after the restart: one run.
		time.Sleep(500 * time.Millisecond)
		if n := strings.Count(out.String(), "migration "+id+" of carol.example.net: starting"); n != 1 {
			t.Errorf("started %d times:\n%s", n, out.String())
		}
	})

	t.Run("consumer killed", func(t *testing.T) {
		var childOut syncBuf
		child := exec.Command(os.Args[0], "-test.run=^TestConsumeChild$")
		child.Env = append(os.Environ(), "RUNBOOK_TEST_CONSUME_CHILD=1", "RUNBOOK_TEST_AMQP="+rmq.URL,
			"RUNBOOK_TEST_RUNBOOK="+rbPath, "RUNBOOK_TEST_TRACK="+track, "RUNBOOK_TEST_DIR="+dir, "RUNBOOK_TEST_TARGET="+target)
		child.Stdout, child.Stderr = &childOut, &childOut
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitOutput(&childOut, "waiting for migrations", time.Minute) {
			_ = child.Process.Kill()
			_ = child.Wait()
			t.Fatalf("the consumer never listened:\n%s", childOut.String())
		}
		id := request(t, "dave.example.net")
		waitStatus(t, "dave.example.net", id, "running", &childOut)
		runID, _ := os.ReadFile(filepath.Join(track, "runs", id))
		_ = child.Process.Kill() // SIGKILL: no cleanup at all
		_ = child.Wait()
		time.Sleep(400 * time.Millisecond) // its heartbeat goes stale

		out, stop := consume(t, true)
		defer stop()
		for i := 0; i < 200 && !strings.Contains(out.String(), "migration "+id+": resuming run"); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		approveGate(t, id)
		waitStatus(t, "dave.example.net", id, "completed", out)
		if again, _ := os.ReadFile(filepath.Join(track, "runs", id)); string(again) != string(runID) || len(runID) == 0 {
			t.Errorf("run %q replaced by %q", runID, again)
		}
		if !strings.Contains(out.String(), "its consumer stopped; resuming") {
			t.Errorf("not resumed:\n%s", out.String())
		}
	})

	t.Run("cancel", func(t *testing.T) {
		out, stop := consume(t, true)
		defer stop()
		id := request(t, "bob.example.net")
		waitStatus(t, "bob.example.net", id, "running", out)
		for deadline := time.Now().Add(30 * time.Second); doc("bob.example.net", id)["last_heartbeat_at"] == nil; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("no heartbeat while the run waited:\n%s", out.String())
				break
			}
		}
		sdktest.MustApply(t, p, "cancel_migration", sdktest.Object(map[string]any{
			"migration_id": id, "instance": "bob.example.net", "tracking_dir": track, "amqp_url": rmq.URL}))
		waitStatus(t, "bob.example.net", id, "canceled", out)
		if _, err := os.Stat(filepath.Join(target, id)); err == nil {
			t.Error("a canceled migration copied files")
		}
	})
}

// startConsumer runs a consumer with o against the broker at url until the
// returned stop is called (once; later calls do nothing), and returns once
// it listens: a message published before its queue is bound would be
// lost.
func startConsumer(t *testing.T, url string, o consumeOptions) (*syncBuf, func()) {
	t.Helper()
	var out syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runConsume(ctx, &out, &out, url, o) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consume: %v", err)
			}
		})
	}
	if !waitOutput(&out, "waiting for migrations", time.Minute) {
		stop()
		t.Fatalf("the consumer never listened:\n%s", out.String())
	}
	return &out, stop
}

package nextcloud

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestMigrationContract drives request_migration and cancel_migration
// against a real RabbitMQ and the Nextcloud stand-in's OCS endpoint: the
// message (exchange, routing key, persistence, message id, payload without
// credentials), one migration in flight per instance (failed ones do not
// block), cancellation, and a failed publish marking the document failed.
func TestMigrationContract(t *testing.T) {
	t.Parallel()
	nc := startNC(t, apache(t))
	rmq := testenv.StartRabbitMQ(t)
	conn, err := amqp.Dial(rmq.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The consumer side's topology: a durable queue bound to the exchange.
	if err := ch.ExchangeDeclare("migration", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("migration.nextcloud.test", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "nextcloud.migration.*", "migration", false, nil); err != nil {
		t.Fatal(err)
	}
	next := func(t *testing.T) amqp.Delivery {
		t.Helper()
		for i := 0; i < 100; i++ {
			d, ok, err := ch.Get(q.Name, true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return d
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no message")
		return amqp.Delivery{}
	}

	track := t.TempDir()
	p := sdktest.Local(t, New())
	in := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": nc.URL, "login": testLogin, "password": canary,
			"instance": "alice.example.net", "tracking_dir": track, "amqp_url": rmq.URL, "source_path": "/Photos"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	res, rec := sdktest.MustApply(t, p, "request_migration", sdktest.Object(in(nil)))
	id := res.Outputs.GetAttr("migration_id").AsString()
	d := next(t)
	if d.RoutingKey != "nextcloud.migration.requested" || d.Exchange != "migration" || d.DeliveryMode != amqp.Persistent || d.MessageId != id {
		t.Errorf("message: key %q exchange %q mode %d id %q (want %q)", d.RoutingKey, d.Exchange, d.DeliveryMode, d.MessageId, id)
	}
	var body map[string]any
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["migrationId"] != id || body["workplaceFqdn"] != "alice.example.net" || body["accountId"] != "nextcloud-alice.example.net" || body["sourcePath"] != "/Photos" {
		t.Errorf("payload = %s", d.Body)
	}
	noCanary(t, "message", string(d.Body))
	docPath := res.Outputs.GetAttr("tracking_doc").AsString()
	raw, _ := os.ReadFile(docPath)
	noCanary(t, "tracking document", string(raw), outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"))
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	if doc["status"] != "pending" || doc["errors"] == nil || doc["skipped"] == nil || doc["progress"] == nil || doc["target_dir"] != "/Nextcloud" {
		t.Errorf("tracking document = %s", raw)
	}
	checkTrackFields(t, doc)
	if st, err := os.Stat(filepath.Join(track, "accounts", "alice.example.net.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("account document: %v %v", st, err)
	}

	t.Run("one in flight per instance", func(t *testing.T) {
		_, _, err := sdktest.Apply(t, p, "request_migration", sdktest.Object(in(nil)))
		sdktest.AssertKind(t, err, sdk.KindConflict)
		if err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("conflict does not name the pending migration: %v", err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		res, _ := sdktest.MustApply(t, p, "cancel_migration", sdktest.Object(map[string]any{"migration_id": id,
			"instance": "alice.example.net", "tracking_dir": track, "amqp_url": rmq.URL}))
		sdktest.AssertOutput(t, res, "status", sdktest.Value("pending"))
		d := next(t)
		if d.RoutingKey != "nextcloud.migration.canceled" || d.MessageId != id || !strings.Contains(string(d.Body), `"migrationId":"`+id+`"`) {
			t.Errorf("cancel message: %q %s", d.RoutingKey, d.Body)
		}
	})

	t.Run("failed ones do not block; a failed publish marks the document failed", func(t *testing.T) {
		// The consumer marked the first one failed.
		var doc trackDoc
		raw, _ := os.ReadFile(docPath)
		_ = json.Unmarshal(raw, &doc)
		doc.Status = "failed"
		if err := (fileStore{dir: track}).put(&doc); err != nil {
			t.Fatal(err)
		}
		_, _, err := sdktest.Apply(t, p, "request_migration", sdktest.Object(in(map[string]any{
			"amqp_url": "amqp://guest:" + canary + "@127.0.0.1:" + itoa(testenv.FreePort(t)) + "/"})))
		sdktest.AssertKind(t, err, sdk.KindUnreachable)
		noCanary(t, "publish error", err.Error())
		ents, _ := os.ReadDir(filepath.Join(track, "migrations", "alice.example.net"))
		failed := 0
		for _, e := range ents {
			var d trackDoc
			raw, _ := os.ReadFile(filepath.Join(track, "migrations", "alice.example.net", e.Name()))
			_ = json.Unmarshal(raw, &d)
			if d.Status == "failed" && strings.HasPrefix(d.FailureReason, "publish failed") {
				failed++
			}
		}
		if len(ents) != 2 || failed != 1 {
			t.Errorf("documents: %d, failed by publish: %d", len(ents), failed)
		}
		// And the terminal ones refuse cancellation.
		_, _, err = sdktest.Apply(t, p, "cancel_migration", sdktest.Object(map[string]any{"migration_id": id,
			"instance": "alice.example.net", "tracking_dir": track, "amqp_url": rmq.URL}))
		sdktest.AssertKind(t, err, sdk.KindConflict)
	})

	t.Run("couchdb store", func(t *testing.T) { testCouchStore(t, p, nc.URL, rmq.URL, next) })

	t.Run("wrong password is refused before anything is stored", func(t *testing.T) {
		_, _, err := sdktest.Apply(t, p, "request_migration", sdktest.Object(in(map[string]any{"password": "nope", "instance": "bob.example.net"})))
		sdktest.AssertKind(t, err, sdk.KindAuth)
		if _, err := os.Stat(filepath.Join(track, "migrations", "bob.example.net")); err == nil {
			t.Error("a document was stored for a refused probe")
		}
	})
}

// checkTrackFields checks that a pending tracking document has every field
// of io.cozy.nextcloud.migrations (the facts' list), with its type:
// progress nested, errors and skipped lists (never null), timestamps null
// until they happen.
func checkTrackFields(t *testing.T, doc map[string]any) {
	t.Helper()
	want := map[string]string{
		"status": "string", "target_dir": "string", "source_path": "string", "progress": "object",
		"errors": "list", "skipped": "list", "started_at": "null", "finished_at": "null", "cancel_requested": "bool",
		"canceled_at": "null", "source_deleted_at": "null", "schema_version": "number", "last_heartbeat_at": "null",
		"created_at": "string", "workplace_fqdn": "string", "account_id": "string",
	}
	for k, typ := range want {
		v, ok := doc[k]
		var got string
		switch v.(type) {
		case nil:
			got = "null"
		case string:
			got = "string"
		case map[string]any:
			got = "object"
		case []any:
			got = "list"
		case bool:
			got = "bool"
		case float64:
			got = "number"
		}
		if !ok || got != typ {
			t.Errorf("tracking document field %s = %#v, want a %s", k, v, typ)
		}
	}
	pr, _ := doc["progress"].(map[string]any)
	for _, k := range []string{"files_imported", "files_total", "bytes_imported", "bytes_total"} {
		if _, ok := pr[k].(float64); !ok {
			t.Errorf("progress.%s = %#v", k, pr[k])
		}
	}
}

package nextcloud

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// couchGet reads a document of a real CouchDB (pouchdb-server).
func couchGet(t *testing.T, db *testenv.CouchDB, path string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, db.URL+path, nil)
	req.SetBasicAuth(db.Username, db.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

// testCouchStore runs the migration actions with the tracking documents in
// a real pouchdb-server, in the databases cozy-stack uses: the pending
// document and the account written where cozy-stack keeps them, one
// migration in flight, update_migration keeping the document (status,
// nested progress, errors, heartbeat) true, cancel refused once terminal.
// Neither the Nextcloud password nor CouchDB's shows in outputs or logs.
func testCouchStore(t *testing.T, p sdk.Provider, ncURL, amqpURL string, next func(*testing.T) amqp.Delivery) {
	db := testenv.StartCouchDB(t)
	const instance = "carol.example.net"
	store := map[string]any{"couchdb_url": db.AuthURL()}
	in := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": ncURL, "login": testLogin, "password": canary, "instance": instance, "amqp_url": amqpURL}
		for _, x := range []map[string]any{store, extra} {
			for k, v := range x {
				m[k] = v
			}
		}
		return m
	}
	res, rec := sdktest.MustApply(t, p, "request_migration", sdktest.Object(in(nil)))
	id := res.Outputs.GetAttr("migration_id").AsString()
	if d := next(t); d.MessageId != id {
		t.Errorf("message id %q, want %q", d.MessageId, id)
	}
	ref := res.Outputs.GetAttr("tracking_doc").AsString()
	const migDB = "/carol-example-net%2Fio-cozy-nextcloud-migrations/"
	if ref != db.URL+migDB+id {
		t.Errorf("tracking_doc = %q, want %q", ref, db.URL+migDB+id)
	}
	status, doc, raw := couchGet(t, db, migDB+id)
	if status != 200 || doc["status"] != "pending" || doc["source_path"] != "/" || doc["target_dir"] != "/Nextcloud" ||
		doc["errors"] == nil || doc["skipped"] == nil || doc["progress"] == nil {
		t.Fatalf("tracking document: %d %s", status, raw)
	}
	status, acct, raw := couchGet(t, db, "/carol-example-net%2Fio-cozy-accounts/nextcloud-"+instance)
	if status != 200 || acct["account_type"] != "nextcloud" || acct["webdav_user_id"] != testUser {
		t.Errorf("account document: %d %s", status, raw)
	}
	for _, s := range []string{outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n")} {
		if strings.Contains(s, db.Password) {
			t.Errorf("CouchDB's password leaks: %s", s)
		}
	}
	noCanary(t, "couchdb request", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"))

	_, _, err := sdktest.Apply(t, p, "request_migration", sdktest.Object(in(nil)))
	sdktest.AssertKind(t, err, sdk.KindConflict)
	if err == nil || !strings.Contains(err.Error(), id) {
		t.Errorf("second request: %v", err)
	}

	upd := func(extra map[string]any) {
		t.Helper()
		m := map[string]any{"instance": instance, "migration_id": id}
		for _, x := range []map[string]any{store, extra} {
			for k, v := range x {
				m[k] = v
			}
		}
		sdktest.MustApply(t, p, "update_migration", sdktest.Object(m))
	}
	upd(map[string]any{"status": "running", "files_total": 3, "bytes_total": 30})
	upd(map[string]any{"files_imported": 2, "bytes_imported": 20,
		"errors": []any{map[string]any{"path": "a.txt", "message": "HTTP 500"}}})
	_, doc, raw = couchGet(t, db, migDB+id)
	pr, _ := doc["progress"].(map[string]any)
	errs, _ := doc["errors"].([]any)
	if doc["status"] != "running" || doc["started_at"] == nil || doc["last_heartbeat_at"] == nil ||
		pr["files_imported"] != 2.0 || pr["files_total"] != 3.0 || pr["bytes_imported"] != 20.0 || len(errs) != 1 {
		t.Errorf("after updates: %s", raw)
	}
	upd(map[string]any{"status": "failed", "failure_reason": "test"})
	_, _, err = sdktest.Apply(t, p, "cancel_migration", sdktest.Object(map[string]any{"migration_id": id, "instance": instance,
		"amqp_url": amqpURL, "couchdb_url": db.AuthURL()}))
	sdktest.AssertKind(t, err, sdk.KindConflict)

	// Failed ones do not block; the lock document is gone after each use.
	res2, _ := sdktest.MustApply(t, p, "request_migration", sdktest.Object(in(nil)))
	next(t)
	if res2.Outputs.GetAttr("migration_id").AsString() == id {
		t.Error("the same migration id twice")
	}
	if status, _, raw := couchGet(t, db, migDB+"_local/runbook-nextcloud-lock"); status != 404 {
		t.Errorf("lock left behind: %d %s", status, raw)
	}

	t.Run("both stores", func(t *testing.T) {
		d, err := sdktest.Validate(t, p, "request_migration", sdktest.Object(in(map[string]any{"tracking_dir": t.TempDir()})))
		if err != nil || !d.HasErrors() {
			t.Errorf("tracking_dir with couchdb_url accepted: %v %v", d, err)
		}
	})
}

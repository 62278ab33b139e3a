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
	checkTrackFields(t, doc)
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
	for _, x := range errs {
		if e, _ := x.(map[string]any); e["path"] != "a.txt" || e["message"] != "HTTP 500" || e["at"] == nil {
			t.Errorf("errors[] = %v, want path, message and at", x)
		}
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

// TestCouchTrackingConflict has another writer update the tracking
// document in a real CouchDB between the read and the write of
// nextcloud.update_migration and of the consumer's Tracking.Update: the
// write answered 409 is done again on the new revision, and neither
// change is lost. Tracking.Account reads the credentials of the account
// the document names.
func TestCouchTrackingConflict(t *testing.T) {
	db := testenv.StartCouchDB(t)
	const instance, id = "frank.example.net", "m-conflict"
	c, err := NewClient(db.AuthURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	store := &couchStore{c: c}
	if err := store.putAccount(instance, &account{ID: "nextcloud-" + instance, AccountType: "nextcloud",
		Auth: accountAuth{URL: "https://cloud.example.net", Login: testLogin, Password: canary}}); err != nil {
		t.Fatal(err)
	}
	if err := store.put(&trackDoc{ID: id, Instance: instance, AccountID: "nextcloud-" + instance, Status: "running"}); err != nil {
		t.Fatal(err)
	}
	migDB := "/frank-example-net%2Fio-cozy-nextcloud-migrations/" + id
	// interfere writes field=n into the document once, as another writer.
	fired := 0
	interfere := func(field string) func(string) {
		return func(string) {
			if fired++; fired > 1 {
				return
			}
			_, doc, _ := couchGet(t, db, migDB)
			doc[field] = true
			b, _ := json.Marshal(doc)
			req, _ := http.NewRequest(http.MethodPut, db.URL+migDB, strings.NewReader(string(b)))
			req.SetBasicAuth(db.Username, db.Password)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Errorf("the other writer: %v %v (%s)", resp.Status, err, b)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}
	t.Cleanup(func() { beforeCouchPut = nil })

	beforeCouchPut = interfere("other_writer_1")
	p := sdktest.Local(t, New())
	sdktest.MustApply(t, p, "update_migration", sdktest.Object(map[string]any{"couchdb_url": db.AuthURL(), "instance": instance,
		"migration_id": id, "status": "completed", "files_imported": 5}))
	_, doc, raw := couchGet(t, db, migDB)
	if pr, _ := doc["progress"].(map[string]any); fired < 2 || doc["status"] != "completed" || pr["files_imported"] != 5.0 || doc["other_writer_1"] != true {
		t.Errorf("after update_migration (hook ran %d times): %s", fired, raw)
	}

	tr, err := OpenTracking("couchdb://" + strings.TrimPrefix(db.AuthURL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tr.String(), db.Password) || len(tr.Secrets()) != 1 || tr.Secrets()[0] != db.Password {
		t.Errorf("String %q, Secrets %v", tr.String(), tr.Secrets())
	}
	fired = 0
	beforeCouchPut = interfere("other_writer_2")
	if err := tr.Update(instance, id, func(d map[string]any) { d["last_heartbeat_at"] = "2026-12-04T00:00:00Z" }); err != nil {
		t.Fatal(err)
	}
	_, doc, raw = couchGet(t, db, migDB)
	if fired < 2 || doc["last_heartbeat_at"] != "2026-12-04T00:00:00Z" || doc["other_writer_1"] != true || doc["other_writer_2"] != true || doc["status"] != "completed" {
		t.Errorf("after Tracking.Update (hook ran %d times): %s", fired, raw)
	}
	beforeCouchPut = nil
	cred, err := tr.Account(instance, id)
	if err != nil || cred.Password != canary || cred.Login != testLogin || cred.URL != "https://cloud.example.net" {
		t.Errorf("account: %+v %v", cred, err)
	}
}

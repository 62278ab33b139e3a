package runbooks_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/couchtest"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/couchdb"
)

// v3Setup seeds a Cozy v3 instance on the source (its databases, their
// _security and its global/instances record) and, on the target, one of
// its databases already holding a document of its own. It returns the
// runbook's variables, naming the databases one by one (pouchdb-server
// cannot list them by prefix).
func v3Setup(t *testing.T, src, dst *testenv.CouchDB) (vars map[string]string, files, settings string) {
	t.Helper()
	sc, dc := couchClient(t, src), couchClient(t, dst)
	prefix := couchtest.DBName(t, "alice")
	domain := prefix + ".example.net"
	files, settings = prefix+"/io-cozy-files", prefix+"/io-cozy-settings"
	if _, err := sc.CreateDB(tctx(t), "global/instances"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.PutDoc(tctx(t), "global/instances", "inst-"+prefix, map[string]any{"domain": domain, "prefix": prefix, "locale": "fr"}); err != nil {
		t.Fatal(err)
	}
	seed(t, sc, files, []map[string]any{
		{"_id": "root", "type": "directory", "name": "/"},
		{"_id": "f1", "type": "file", "name": "a.txt", "size": "3"},
	})
	seed(t, sc, settings, []map[string]any{{"_id": "io.cozy.settings.instance", "email": "alice@example.net"}})
	sec := map[string]any{"members": map[string]any{"names": []string{prefix}, "roles": []string{}}}
	if err := sc.JSON(tctx(t), couchdb.Request{Method: "PUT", Path: "/" + url.PathEscape(files) + "/_security", Body: sec}, nil); err != nil {
		t.Fatal(err)
	}
	seed(t, dc, files, []map[string]any{{"_id": "own", "type": "file", "name": "kept.txt"}})
	dbs, _ := json.Marshal([]string{files, settings})
	return map[string]string{
		"source_url": src.URL, "source_password": src.Password,
		"target_url": dst.URL, "target_password": dst.Password,
		"domain": domain, "databases": string(dbs),
	}, files, settings
}

// TestCozyV3MoveRunbook runs cozy-v3-move.hcl with the databases named:
// a run failing at its last step rolls back into a target database that
// already existed (its own document stays, the copied ones go, the
// databases the run created go); then a full run copies everything, with
// documents and revisions counted.
func TestCozyV3MoveRunbook(t *testing.T) {
	t.Parallel()
	src, dst := couchServers.Servers(t)
	vars, files, settings := v3Setup(t, src, dst)
	dc := couchClient(t, dst)
	secBefore := security(t, dc, files)

	rb := loadRunbook(t, "cozy-v3-move.hcl", vars)
	res := rb.apply(t, tctx(t), "", couchProviders("instance_record").forRun)
	if res.State != journal.RunRolledBack {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if diff := cmp.Diff([]string{"own"}, allIDs(t, dc, files)); diff != "" {
		t.Errorf("rolled-back target database that existed (-want +got):\n%s", diff)
	}
	if ok, _ := dc.Exists(tctx(t), settings); ok {
		t.Errorf("rollback left %s, which the run created", settings)
	}
	if got := security(t, dc, files); got != secBefore {
		t.Errorf("_security after rollback = %s, was %s", got, secBefore)
	}

	// A full run, into another instance's databases (the rollback's
	// deletions stay in the first one's history: copying into it again
	// would not bring the documents back).
	vars, files, settings = v3Setup(t, src, dst)
	rb = loadRunbook(t, "cozy-v3-move.hcl", vars)
	res = rb.apply(t, tctx(t), "", couchProviders("").forRun)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if diff := cmp.Diff([]string{"f1", "own", "root"}, allIDs(t, dc, files)); diff != "" {
		t.Errorf("target %s (-want +got):\n%s", files, diff)
	}
	if diff := cmp.Diff([]string{"io.cozy.settings.instance"}, allIDs(t, dc, settings)); diff != "" {
		t.Errorf("target %s (-want +got):\n%s", settings, diff)
	}
	if got, want := security(t, dc, files), security(t, couchClient(t, src), files); got != want {
		t.Errorf("_security = %s, want %s", got, want)
	}
	inst := getDoc(t, dc, "global/instances", "inst-"+vars["domain"][:len(vars["domain"])-len(".example.net")])
	if inst["domain"] != vars["domain"] {
		t.Errorf("instance record = %v", inst)
	}
	for name, want := range map[string]int64{"documents_written": 3, "revisions_written": 3} {
		n, _ := res.Outputs[name].AsBigFloat().Int64()
		if n != want {
			t.Errorf("output %s = %d, want %d", name, n, want)
		}
	}
}

func security(t *testing.T, c *couchdb.Client, db string) string {
	t.Helper()
	var sec any
	if err := c.JSON(tctx(t), couchdb.Request{Method: "GET", Path: "/" + url.PathEscape(db) + "/_security"}, &sec); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(sec)
}

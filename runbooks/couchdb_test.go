package runbooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/internal/couchtest"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/couchdb"
	"github.com/runbookdev/runbook/sdk"
)

// couchProviders hands the engine the couchdb plugin in-process and a core
// plugin whose approve and assert answer at once; it can fail step
// failAt's first apply.
func couchProviders(failAt string) *stubProviders {
	return &stubProviders{failAt: failAt, plugins: map[string]func() *sdk.Plugin{
		"couchdb": couchdb.New,
		"core":    stubCore(approveStub{}, assertStub{}),
	}}
}

// couchServers is the source and target servers the tests share.
var couchServers couchtest.Pair

func TestMain(m *testing.M) {
	code := testenv.RunMain(m) // stops the PostgreSQL cluster of the synapse tests
	couchServers.Stop()
	os.Exit(code)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func couchClient(t *testing.T, s *testenv.CouchDB) *couchdb.Client {
	t.Helper()
	c, err := couchdb.NewClient(s.URL, s.Username, s.Password)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// seed creates db and writes docs with _bulk_docs (new edits).
func seed(t *testing.T, c *couchdb.Client, db string, docs []map[string]any) {
	t.Helper()
	ctx := tctx(t)
	if _, err := c.CreateDB(ctx, db); err != nil {
		t.Fatalf("create %s: %v", db, err)
	}
	for i := 0; i < len(docs); i += 1000 {
		var res []map[string]any
		req := couchdb.Request{Method: "POST", Path: "/" + url.PathEscape(db) + "/_bulk_docs", Body: map[string]any{"docs": docs[i:min(i+1000, len(docs))]}}
		if err := c.JSON(ctx, req, &res); err != nil {
			t.Fatalf("seed %s: %v", db, err)
		}
		for _, r := range res {
			if r["error"] != nil {
				t.Fatalf("seed %s: %v", db, r)
			}
		}
	}
}

func smallDocs(n int) []map[string]any {
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = map[string]any{"_id": fmt.Sprintf("doc-%05d", i), "n": i, "kind": "small"}
	}
	return docs
}

// leafDocs reads every leaf revision of every document of db, with its
// history and attachments, keyed "id rev".
func leafDocs(t *testing.T, c *couchdb.Client, db string) map[string]string {
	t.Helper()
	ctx := tctx(t)
	out := map[string]string{}
	var since json.RawMessage
	for {
		page, err := c.Changes(ctx, db, since, 1000)
		if err != nil {
			t.Fatalf("changes %s: %v", db, err)
		}
		if len(page.Results) == 0 {
			return out
		}
		since = page.LastSeq
		for _, ch := range page.Results {
			for _, rev := range ch.Revs() {
				d, err := c.GetDoc(ctx, db, ch.ID, url.Values{"rev": {rev}, "revs": {"true"}, "attachments": {"true"}})
				if err != nil {
					t.Fatalf("get %s/%s@%s: %v", db, ch.ID, rev, err)
				}
				out[ch.ID+" "+rev] = couchtest.CanonicalFull(d)
			}
		}
	}
}

func getDoc(t *testing.T, c *couchdb.Client, db, id string) map[string]any {
	t.Helper()
	d, err := c.GetDoc(tctx(t), db, id, url.Values{"attachments": {"true"}})
	if err != nil {
		t.Fatalf("get %s/%s: %v", db, id, err)
	}
	return d
}

// allIDs lists the ids of db's live documents, design documents aside.
func allIDs(t *testing.T, c *couchdb.Client, db string) []string {
	t.Helper()
	var res struct {
		Rows []struct {
			ID string `json:"id"`
		} `json:"rows"`
	}
	if err := c.JSON(tctx(t), couchdb.Request{Method: "GET", Path: "/" + url.PathEscape(db) + "/_all_docs"}, &res); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res.Rows {
		if !strings.HasPrefix(r.ID, "_design/") {
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func v2Vars(t *testing.T, src, dst *testenv.CouchDB, db string) map[string]string {
	return map[string]string{
		"database":   db,
		"source_url": src.URL, "source_password": src.Password,
		"target_url": dst.URL, "target_password": dst.Password,
		"target_placeholder_email": "placeholder@new.example",
		"backup_path":              filepath.Join(t.TempDir(), "target-cozy.json.gz"),
	}
}

// TestCozyV2MoveRunbook runs cozy-v2-move.hcl through the engine on
// Cozy-v2-shaped data (with a conflicted document, a docType in another
// case, _security on the source and a _local document on the target) and
// asserts the target's documents exactly; then a run failing at the last
// step rolls the target back to what it was, _local document included.
func TestCozyV2MoveRunbook(t *testing.T) {
	t.Parallel()
	src, dst := couchServers.Servers(t)
	db := couchtest.DBName(t, "cozy")
	sc, dc := couchClient(t, src), couchClient(t, dst)
	seed(t, sc, db, append(couchtest.V2Source(), map[string]any{"_id": "src-app-notes", "docType": "application", "slug": "notes"}))
	seedConflicted(t, sc, db, "contact-conflicted")
	srcSec := map[string]any{"admins": map[string]any{"names": []string{"cozy"}, "roles": []string{}}, "members": map[string]any{"names": []string{}, "roles": []string{}}}
	if err := sc.JSON(tctx(t), couchdb.Request{Method: "PUT", Path: "/" + url.PathEscape(db) + "/_security", Body: srcSec}, nil); err != nil {
		t.Fatal(err)
	}
	seed(t, dc, db, couchtest.V2Target())
	localPath := "/" + url.PathEscape(db) + "/_local/phone-sync"
	if err := dc.JSON(tctx(t), couchdb.Request{Method: "PUT", Path: localPath, Body: map[string]any{"last_seq": 42}}, nil); err != nil {
		t.Fatal(err)
	}
	before, secBefore := leafDocs(t, dc, db), security(t, dc, db)
	vars := func() map[string]string {
		v := v2Vars(t, src, dst, db)
		v["target_local_ids"] = `["phone-sync"]`
		return v
	}

	t.Run("rolled back", func(t *testing.T) {
		rb := loadRunbook(t, "cozy-v2-move.hcl", vars())
		res := rb.apply(t, tctx(t), "", couchProviders("verify").forRun)
		if res.State != journal.RunRolledBack {
			t.Fatalf("state = %s, err = %v", res.State, res.Err)
		}
		if diff := cmp.Diff(before, leafDocs(t, dc, db)); diff != "" {
			t.Errorf("target not restored (-before +after):\n%s", diff)
		}
		if got := security(t, dc, db); got != secBefore {
			t.Errorf("_security after rollback = %s, was %s", got, secBefore)
		}
		var local map[string]any
		if err := dc.JSON(tctx(t), couchdb.Request{Method: "GET", Path: localPath}, &local); err != nil || local["last_seq"] != float64(42) {
			t.Errorf("_local/phone-sync after rollback: %v, %v", local, err)
		}
	})

	rb := loadRunbook(t, "cozy-v2-move.hcl", vars())
	res := rb.apply(t, tctx(t), "", couchProviders("").forRun)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	var want []string
	for _, d := range couchtest.V2Source() {
		want = append(want, d["_id"].(string))
	}
	want = append(want, "contact-conflicted", "dst-app-databrowser", "dst-stack-ds", "dst-stack-home", "dst-stack-proxy")
	drop := map[string]bool{"src-app-files": true, "src-app-contacts": true, "src-stack-home": true, "src-stack-proxy": true, "src-stack-ds": true}
	kept := want[:0]
	for _, id := range want {
		if !drop[id] {
			kept = append(kept, id)
		}
	}
	sort.Strings(kept)
	if diff := cmp.Diff(kept, allIDs(t, dc, db)); diff != "" {
		t.Errorf("target documents (-want +got):\n%s", diff)
	}
	// Kept documents are the source's, byte for byte (with attachments).
	for _, id := range []string{"src-instance", "src-user", "binary-2", "contact-07"} {
		s, d := getDoc(t, sc, db, id), getDoc(t, dc, db, id)
		if diff := cmp.Diff(couchtest.CanonicalFull(s), couchtest.CanonicalFull(d)); diff != "" {
			t.Errorf("%s differs:\n%s", id, diff)
		}
	}
	if got, want := security(t, dc, db), security(t, sc, db); got != want {
		t.Errorf("target _security = %s, want the source's %s", got, want)
	}
	deleted := res.Outputs["deleted"]
	if deleted.LengthInt() != 8 {
		t.Errorf("deleted output = %#v", deleted)
	}
	// Documents and revisions apart: the conflicted one has two.
	docs := int64(len(couchtest.V2Source()) + 2)
	for name, want := range map[string]int64{"documents_written": docs, "revisions_written": docs + 1} {
		if n, _ := res.Outputs[name].AsBigFloat().Int64(); n != want {
			t.Errorf("output %s = %d, want %d", name, n, want)
		}
	}
}

// TestCozyV2MoveSourceWithoutDomain: a source instance without a domain
// is the one kept; the target's own CozyInstance goes.
func TestCozyV2MoveSourceWithoutDomain(t *testing.T) {
	t.Parallel()
	src, dst := couchServers.Servers(t)
	db := couchtest.DBName(t, "cozy")
	sc, dc := couchClient(t, src), couchClient(t, dst)
	docs := couchtest.V2Source()
	delete(docs[0], "domain")
	seed(t, sc, db, docs)
	seed(t, dc, db, couchtest.V2Target())
	rb := loadRunbook(t, "cozy-v2-move.hcl", v2Vars(t, src, dst, db))
	res := rb.apply(t, tctx(t), "", couchProviders("").forRun)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if _, err := dc.GetDoc(tctx(t), db, "dst-instance", nil); err == nil {
		t.Error("the target's own CozyInstance is left")
	}
	if d := getDoc(t, dc, db, "src-instance"); d["locale"] != "fr" {
		t.Errorf("source instance on the target: %v", d)
	}
}

// seedConflicted writes a Contact with two conflicting branches.
func seedConflicted(t *testing.T, c *couchdb.Client, db, id string) {
	t.Helper()
	docs := []map[string]any{
		{"_id": id, "_rev": "1-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "docType": "Contact", "fn": "Alice"},
		{"_id": id, "_rev": "1-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "docType": "Contact", "fn": "Alice B."},
	}
	var res []map[string]any
	if err := c.JSON(tctx(t), couchdb.Request{Method: "POST", Path: "/" + url.PathEscape(db) + "/_bulk_docs", Body: map[string]any{"docs": docs, "new_edits": false}}, &res); err != nil {
		t.Fatal(err)
	}
}

// TestCozyV2MoveResumeReplication interrupts a run in the middle of the
// copy (as Ctrl-C does) and resumes it from the journal: the resumed copy
// reads far fewer changes than the database holds.
func TestCozyV2MoveResumeReplication(t *testing.T) {
	t.Parallel()
	const total = 3000
	src, dst := couchServers.Servers(t)
	db := couchtest.DBName(t, "cozy")
	sc, dc := couchClient(t, src), couchClient(t, dst)
	seed(t, sc, db, append(couchtest.V2Source(), smallDocs(total)...))
	seed(t, dc, db, couchtest.V2Target())
	vars := v2Vars(t, src, dst, db)
	vars["batch_size"] = "100"
	vars["workers"] = "2"
	rb := loadRunbook(t, "cozy-v2-move.hcl", vars)

	ctx, cancel := context.WithCancel(tctx(t))
	p := couchProviders("")
	// Interrupt once two thirds of the documents are copied, as Ctrl-C
	// does: the step stops and records how far it got.
	var once sync.Once
	p.onProgress = func(action, unit string, cur int64) {
		if action == "replicate" && unit == "docs" && cur >= 2*total/3 {
			once.Do(cancel)
		}
	}
	start := time.Now()
	res := rb.apply(t, ctx, "", p.forRun)
	t.Logf("interrupted run: %v", time.Since(start))
	if res.State != journal.RunInterrupted {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	info, _ := dc.DBInfo(tctx(t), db)
	if info.DocCount >= total {
		t.Fatalf("the copy finished before the interrupt (%d docs)", info.DocCount)
	}
	ids, _ := rb.store.List()
	if len(ids) != 1 {
		t.Fatalf("runs = %v", ids)
	}
	start = time.Now()
	res = rb.apply(t, tctx(t), ids[0], couchProviders("").forRun)
	t.Logf("resumed run: %v", time.Since(start))
	if res.State != journal.RunSucceeded {
		t.Fatalf("resumed state = %s, err = %v", res.State, res.Err)
	}
	n := total + len(couchtest.V2Source())
	for _, in := range res.Instances {
		if in.Address != "copy" && in.Address != "step.copy" {
			continue
		}
		read, _ := in.Outputs.GetAttr("changes_read").AsBigFloat().Int64()
		if read > total/2 {
			t.Errorf("resumed copy read %d changes of %d", read, n)
		}
		// The counts cover the whole copy, not the resumed part.
		for _, name := range []string{"documents_written", "revisions_written"} {
			if got, _ := in.Outputs.GetAttr(name).AsBigFloat().Int64(); got != int64(n) {
				t.Errorf("resumed copy: %s = %d, want %d", name, got, n)
			}
		}
		if p := prompt(res); !strings.Contains(p, fmt.Sprintf("Copied %d documents (%d revisions)", n, n)) {
			t.Errorf("approval prompt: %q", p)
		}
		t.Logf("resumed copy read %d changes of %d (target had %d docs at the interrupt)", read, n, info.DocCount)
		return
	}
	t.Fatalf("no copy instance in %v", res.Instances)
}

// prompt is the approval prompt of the cleanup step of a run.
func prompt(res *run.Result) string {
	for _, in := range res.Instances {
		if strings.HasSuffix(in.Address, "cleanup") && in.Inputs != cty.NilVal {
			v, _ := in.Inputs.UnmarkDeep()
			return v.GetAttr("prompt").AsString()
		}
	}
	return ""
}

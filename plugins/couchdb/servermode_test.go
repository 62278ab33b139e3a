package couchdb

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/sdk"
)

// pouchdb-server has no /_scheduler: the plugin follows the _replicator
// document's _replication_state instead, as with CouchDB 1.x. Against
// CouchDB 2+ the same code polls /_scheduler/docs/_replicator/<id>.
func TestReplicateServerMode(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seedVaried(t, sc, db)
	p := sdk.Local(New())
	rec := &recorder{}
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{db}, "mode": "server", "poll_interval": "200ms"}))
	res, err := p.Apply(tctx(t), "replicate", &sdk.ApplyRequest{Inputs: in}, rec)
	if err != nil {
		t.Fatalf("%v\n%s\nserver log:\n%s", err, rec.allLogs(), dst.Log())
	}
	if !strings.Contains(rec.allLogs(), "no _scheduler") {
		t.Errorf("expected the _scheduler fallback:\n%s", rec.allLogs())
	}
	if diff := cmp.Diff(leafDocs(t, sc, db), leafDocs(t, dc, db)); diff != "" {
		t.Errorf("target differs (-src +dst):\n%s", diff)
	}
	if !res.Outputs.GetAttr("verified").True() {
		t.Error("not verified")
	}
	// The _replicator document is removed once done.
	if _, err := dc.GetDoc(tctx(t), "_replicator", "runbook-"+replicationID(sc.URL(), db, dc.URL(), db), nil); kindOf(err) != sdk.KindNotFound {
		t.Errorf("_replicator document left behind: %v", err)
	}
}

func TestVerifyFindsMissing(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "db")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, smallDocs(50))
	seed(t, dc, db, smallDocs(45))
	p := sdk.Local(New())
	in := merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{"databases": []string{db}})
	res, err := p.Apply(tctx(t), "verify", &sdk.ApplyRequest{Inputs: obj(in)}, &recorder{})
	if kindOf(err) != sdk.KindConflict {
		t.Fatalf("err = %v", err)
	}
	if n := outInt(t, res, "missing_revisions"); n != 5 {
		t.Errorf("missing_revisions = %d, want 5", n)
	}
	if res.Outputs.GetAttr("ok").True() {
		t.Error("ok = true")
	}
	in["fail_on_mismatch"] = false
	in["sample"] = 10
	res, err = p.Apply(tctx(t), "verify", &sdk.ApplyRequest{Inputs: obj(in)}, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.Outputs.GetAttr("report").Index(ctyInt(0)).GetAttr("compared").AsBigFloat().Int64(); n < 10 || n > 15 {
		t.Errorf("sampled %d documents, want about 10", n)
	}
}

// Interrupting a server-mode step deletes its _replicator document, which
// cancels the server's replication.
func TestReplicateServerModeCancel(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "db")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, smallDocs(3000))
	ctx, cancel := context.WithCancel(tctx(t))
	rec := &recorder{}
	rec.onLog = func(msg string) {
		if strings.Contains(msg, "_replicator/") {
			cancel()
		}
	}
	in := obj(merge(connIn(src, "source_"), connIn(dst, "target_"), map[string]any{
		"databases": []string{db}, "mode": "server", "poll_interval": "100ms"}))
	_, err := sdk.Local(New()).Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: in}, rec)
	if kindOf(err) != sdk.KindCancelled {
		t.Fatalf("err = %v\n%s", err, rec.allLogs())
	}
	if _, err := dc.GetDoc(tctx(t), "_replicator", "runbook-"+replicationID(sc.URL(), db, dc.URL(), db), nil); kindOf(err) != sdk.KindNotFound {
		t.Errorf("_replicator document left behind: %v", err)
	}
}

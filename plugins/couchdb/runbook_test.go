package couchdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// providers hands the engine this plugin in-process and a core plugin whose
// approve and assert answer at once. It can fail one step's first apply and
// watch the replication's checkpoints.
type providers struct {
	failAt string
	// onProgress is called on each progress event of couchdb.replicate.
	onProgress func(cur int64)

	mu     sync.Mutex // guards the fields below
	failed bool
	events []string // step keys applied
}

func (p *providers) Provider(_ context.Context, name string) (sdk.Provider, error) {
	switch name {
	case "couchdb":
		return &watched{Provider: sdk.Local(New()), p: p}, nil
	case "core":
		return &watched{Provider: sdk.Local(&sdk.Plugin{Name: "core", Version: "0", Actions: []sdk.Action{approveStub{}, assertStub{}}}), p: p}, nil
	}
	return nil, fmt.Errorf("no plugin %q", name)
}

type watched struct {
	sdk.Provider
	p *providers
}

func (w *watched) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	w.p.mu.Lock()
	w.p.events = append(w.p.events, req.IdempotencyKey)
	fail := w.p.failAt != "" && !w.p.failed &&
		(strings.Contains(req.IdempotencyKey, "/step."+w.p.failAt+"/") || strings.Contains(req.IdempotencyKey, "/"+w.p.failAt+"/"))
	if fail {
		w.p.failed = true
	}
	w.p.mu.Unlock()
	if fail {
		return nil, sdk.Errorf(sdk.KindConflict, false, "injected", "injected failure")
	}
	if action == "replicate" {
		ev = &cpWatch{Events: ev, p: w.p}
	}
	return w.Provider.Apply(ctx, action, req, ev)
}

type cpWatch struct {
	sdk.Events
	p *providers
}

func (c *cpWatch) Progress(cur, total int64, unit string) {
	c.Events.Progress(cur, total, unit)
	if f := c.p.onProgress; f != nil && unit == "docs" {
		f(cur)
	}
}

type approveStub struct{}

func (approveStub) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "approve", Inputs: []sdk.Attribute{{Name: "prompt", Type: cty.String, Required: true}, {Name: "timeout", Type: cty.String}},
		Outputs: []sdk.Attribute{{Name: "approved_by", Type: cty.String}, {Name: "at", Type: cty.String}}}
}

func (approveStub) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"approved_by": cty.StringVal("test"), "at": cty.StringVal("now")})}, nil
}

type assertStub struct{}

func (assertStub) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "assert", Inputs: []sdk.Attribute{{Name: "condition", Type: cty.Bool, Required: true}, {Name: "message", Type: cty.String}}}
}

func (assertStub) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	if !req.Inputs.GetAttr("condition").True() {
		return nil, sdk.Errorf(sdk.KindConflict, false, "", "%s", req.Inputs.GetAttr("message").AsString())
	}
	return &sdk.Result{}, nil
}

type runbookRun struct {
	cfg   *lang.Config
	vals  map[string]cty.Value
	store *journal.LocalStore
}

func loadRunbook(t *testing.T, file string, vars map[string]string) *runbookRun {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "runbooks", file))
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := lang.LoadSources(map[string][]byte{file: src})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var args []string
	for k, v := range vars {
		args = append(args, k+"="+v)
	}
	sort.Strings(args)
	vals, diags := cfg.ResolveVariables(lang.VarSources{Args: args})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return &runbookRun{cfg: cfg, vals: vals, store: journal.NewLocal(t.TempDir())}
}

func (r *runbookRun) apply(t *testing.T, ctx context.Context, p *providers, resume string) *run.Result {
	t.Helper()
	var j journal.Journal
	var st *journal.State
	id := resume
	if resume == "" {
		meta := &journal.Meta{Started: time.Now()}
		var err error
		if j, err = r.store.Create(meta); err != nil {
			t.Fatal(err)
		}
		id = meta.ID
	} else {
		var err error
		if j, st, err = r.store.Open(resume); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(&journal.Record{Type: journal.RecRunResumed, Meta: &journal.Meta{ID: resume}}); err != nil {
			t.Fatal(err)
		}
	}
	defer j.Close()
	res, err := run.Apply(ctx, run.FromConfig(&lang.Scope{Config: r.cfg, Vars: r.vals, RunID: id}),
		run.Options{RunID: id, Providers: p, Journal: j, Resume: st,
			Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return res
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

func allIDs(t *testing.T, c *Client, db string) []string {
	t.Helper()
	res, err := findDocs(tctx(t), c, db, map[string]any{"_id": map[string]any{"$gt": nil}}, []string{"_id"}, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := idsOf(res.Docs)
	sort.Strings(ids)
	return ids
}

// TestCozyV2MoveRunbook runs runbooks/cozy-v2-move.hcl through the engine
// on Cozy-v2-shaped data and asserts the target's documents exactly; then
// a run failing at the last step rolls the target back to what it was.
func TestCozyV2MoveRunbook(t *testing.T) {
	t.Parallel()
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, cozyV2Source())
	seed(t, dc, db, cozyV2Target())
	before := leafDocs(t, dc, db)

	t.Run("rolled back", func(t *testing.T) {
		rb := loadRunbook(t, "cozy-v2-move.hcl", v2Vars(t, src, dst, db))
		res := rb.apply(t, tctx(t), &providers{failAt: "verify"}, "")
		if res.State != journal.RunRolledBack {
			t.Fatalf("state = %s, err = %v", res.State, res.Err)
		}
		if diff := cmp.Diff(before, leafDocs(t, dc, db)); diff != "" {
			t.Errorf("target not restored (-before +after):\n%s", diff)
		}
	})

	rb := loadRunbook(t, "cozy-v2-move.hcl", v2Vars(t, src, dst, db))
	res := rb.apply(t, tctx(t), &providers{}, "")
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	var want []string
	for _, d := range cozyV2Source() {
		want = append(want, d["_id"].(string))
	}
	want = append(want, "dst-app-databrowser", "dst-stack-ds", "dst-stack-home", "dst-stack-proxy")
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
		if diff := cmp.Diff(canonicalFull(s), canonicalFull(d)); diff != "" {
			t.Errorf("%s differs:\n%s", id, diff)
		}
	}
	deleted := res.Outputs["deleted"]
	if deleted.LengthInt() != 7 {
		t.Errorf("deleted output = %#v", deleted)
	}
}

// TestRunbookResumeReplication interrupts a run in the middle of the copy
// (as Ctrl-C does) and resumes it from the journal: the resumed copy reads
// far fewer changes than the database holds.
func TestRunbookResumeReplication(t *testing.T) {
	t.Parallel()
	const total = 3000
	src, dst := servers(t)
	db := dbName(t, "cozy")
	sc, dc := client(t, src), client(t, dst)
	seed(t, sc, db, append(cozyV2Source(), smallDocs(total)...))
	seed(t, dc, db, cozyV2Target())
	vars := v2Vars(t, src, dst, db)
	vars["batch_size"] = "100"
	vars["workers"] = "2"
	rb := loadRunbook(t, "cozy-v2-move.hcl", vars)

	ctx, cancel := context.WithCancel(tctx(t))
	p := &providers{}
	// Interrupt once a third of the documents are copied, as Ctrl-C does:
	// the step stops and records how far it got.
	var once sync.Once
	p.onProgress = func(cur int64) {
		if cur >= 2*total/3 {
			once.Do(cancel)
		}
	}
	start := time.Now()
	res := rb.apply(t, ctx, p, "")
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
	res = rb.apply(t, tctx(t), &providers{}, ids[0])
	t.Logf("resumed run: %v", time.Since(start))
	if res.State != journal.RunSucceeded {
		t.Fatalf("resumed state = %s, err = %v", res.State, res.Err)
	}
	for _, in := range res.Instances {
		if in.Address != "copy" && in.Address != "step.copy" {
			continue
		}
		read, _ := in.Outputs.GetAttr("changes_read").AsBigFloat().Int64()
		if read > total/2 {
			t.Errorf("resumed copy read %d changes of %d", read, total+len(cozyV2Source()))
		}
		t.Logf("resumed copy read %d changes of %d (target had %d docs at the interrupt)", read, total+len(cozyV2Source()), info.DocCount)
		return
	}
	t.Fatalf("no copy instance in %v", res.Instances)
}

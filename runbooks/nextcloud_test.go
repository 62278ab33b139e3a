package runbooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/nextcloud"
	"github.com/runbookdev/runbook/sdk"
)

// ncProviders hands the engine the nextcloud plugin in-process and a core
// whose approve and assert answer at once; it can fail step failAt once.
func ncProviders(failAt string) *stubProviders {
	return &stubProviders{failAt: failAt, plugins: map[string]func() *sdk.Plugin{
		"nextcloud": nextcloud.New,
		"core":      stubCore(approveStub{}, assertStub{}, noopStub{}),
	}}
}

// noopStub is core.noop.
type noopStub struct{}

func (noopStub) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "noop", Inputs: []sdk.Attribute{{Name: "values", Type: cty.DynamicPseudoType}, {Name: "fail", Type: cty.String}}}
}

func (noopStub) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return &sdk.Result{}, nil
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNextcloudImportRunbook runs runbooks/nextcloud-import.hcl against
// Apache mod_dav behind the Nextcloud stand-in (OCS probe): first with a
// failure after the copy (the copy is undone and the tracking document
// says failed), then with the deletion refused (the copy stays, the
// source too), then to the end with the source deleted after the second
// approval (top-level children only) and the document completed.
func TestNextcloudImportRunbook(t *testing.T) {
	t.Parallel()
	const pw = "runbook-canary-pw-42"
	ap := testenv.StartApacheDAV(t, "alice", "backend")
	tree := map[string]string{"a.txt": "a", "Photos/été #1.jpg": strings.Repeat("p", 4096), "Docs/100% sure.md": "sure", "Docs/deep/x.txt": "x"}
	for p, c := range tree {
		fp := filepath.Join(ap.Root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ap.Own(t)
	nc := testenv.StartNextcloudFront(t, ap, "alice@example.net", pw)

	track := t.TempDir()
	docPath := filepath.Join(track, "migrations", "alice.example.net", "m1.json")
	if err := os.MkdirAll(filepath.Dir(docPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(docPath, []byte(`{"_id":"m1","schema_version":1,"workplace_fqdn":"alice.example.net","status":"pending","progress":{},"errors":[],"skipped":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := func(target string, del bool) map[string]string {
		return map[string]string{
			"nextcloud_url": nc.URL, "login": "alice@example.net", "password": pw,
			"target_dir": target, "work_dir": t.TempDir(), "delete_source": fmt.Sprint(del),
			"tracking_dir": track, "instance": "alice.example.net", "migration_id": "m1",
		}
	}

	t.Run("rolled back", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "import")
		rb := loadRunbook(t, "nextcloud-import.hcl", vars(target, true))
		res := rb.apply(t, tctx(t), "", ncProviders("verify").forRun)
		if res.State != journal.RunRolledBack {
			t.Fatalf("state = %s, err = %v", res.State, res.Err)
		}
		if ents, err := os.ReadDir(target); err == nil && len(ents) > 0 {
			t.Errorf("the copy was not undone: %v", ents)
		}
		if d := readJSON(t, docPath); d["status"] != "failed" || d["started_at"] == nil {
			t.Errorf("tracking document after rollback: %v", d)
		}
		if _, err := os.Stat(filepath.Join(ap.Root, "a.txt")); err != nil {
			t.Errorf("source touched: %v", err)
		}
	})

	t.Run("deletion refused keeps both sides", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "import")
		rb := loadRunbook(t, "nextcloud-import.hcl", vars(target, true))
		res := rb.apply(t, tctx(t), "", ncProviders("delete_ok").forRun)
		if res.State != journal.RunFailed {
			t.Fatalf("state = %s, err = %v", res.State, res.Err)
		}
		if _, err := os.Stat(filepath.Join(target, "Docs", "deep", "x.txt")); err != nil {
			t.Errorf("copy undone after a refused deletion: %v", err)
		}
		if _, err := os.Stat(filepath.Join(ap.Root, "a.txt")); err != nil {
			t.Errorf("source touched: %v", err)
		}
		if d := readJSON(t, docPath); d["status"] != "completed" || d["source_deleted_at"] != nil {
			t.Errorf("tracking document: %v", d)
		}
	})

	// The consumer requests it again.
	d := readJSON(t, docPath)
	d["status"] = "pending"
	b, _ := json.Marshal(d)
	_ = os.WriteFile(docPath, b, 0o644)

	target := filepath.Join(t.TempDir(), "import")
	provs := ncProviders("")
	rb := loadRunbook(t, "nextcloud-import.hcl", vars(target, true))
	res := rb.apply(t, tctx(t), "", provs.forRun)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for p, c := range tree {
		if got, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(p))); err != nil || string(got) != c {
			t.Errorf("%s: %q %v", p, got, err)
		}
	}
	if len(provs.prompts) != 2 || !strings.Contains(provs.prompts[0], "Copy 4 files in 3 folders") || !strings.Contains(provs.prompts[1], "cannot be undone") {
		t.Errorf("approvals = %q", provs.prompts)
	}
	// The home stays; its children went.
	if ents, err := os.ReadDir(ap.Root); err != nil || len(ents) != 0 {
		t.Errorf("source after delete: %v %v", ents, err)
	}
	d = readJSON(t, docPath)
	prog, _ := d["progress"].(map[string]any)
	if d["status"] != "completed" || d["finished_at"] == nil || d["source_deleted_at"] == nil || prog["files_imported"] != 4.0 || prog["files_total"] != 4.0 {
		t.Errorf("tracking document: %v", d)
	}
	if errs, ok := d["errors"].([]any); !ok || len(errs) != 0 {
		t.Errorf("errors = %v", d["errors"])
	}
	// The password is in no journal file.
	_ = filepath.Walk(rb.store.Dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), pw) {
				t.Errorf("%s holds the password", p)
			}
		}
		return nil
	})
}

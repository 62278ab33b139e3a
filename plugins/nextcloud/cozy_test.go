package nextcloud

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestCopyToCozy copies an awkward tree (unicode, spaces, #, %, a very
// long path, an empty file, a file spooled to disk for its MD5) from
// Apache mod_dav behind the Nextcloud stand-in into the Cozy files API
// stand-in: every upload carries the right Content-MD5 and the mtime in
// CreatedAt/UpdatedAt, a damaged upload (412) is sent again, a name taken
// (409) is skipped with the reason, and applying again sends nothing.
// Undo trashes only what the copy created and is unchanged, names a file
// edited since (conflict), and forced removes it too. A wrong token is
// auth, 413 is quota. The token and the password show nowhere.
func TestCopyToCozy(t *testing.T) {
	t.Parallel()
	ap := apache(t)
	tree := awkwardTree()
	tree["big.bin"] = randomContent(cozyMemMax + 300<<10)
	mtimes := seed(t, ap, tree, time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC))
	nc := startNC(t, ap)
	cz := startCozy(t, canary)
	// The user's own file, already in the instance: never overwritten.
	mine := filepath.Join(cz.Root, "Nextcloud", "Documents", "a b.txt")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	cz.Damage["hello.txt"] = 1

	p := sdktest.Local(t, New())
	state := t.TempDir()
	in := copyIn(nc.URL, map[string]any{"target_url": cz.URL, "target_token": canary, "target_vendor": "cozy",
		"target_path": "/Nextcloud", "state_dir": state, "concurrency": 4})
	res, rec := sdktest.MustApply(t, p, "copy", in)
	want := map[string]string{}
	for k, v := range tree {
		if k != "Documents/a b.txt" {
			want[k] = v
		}
	}
	checkTree(t, filepath.Join(cz.Root, "Nextcloud"), want, mtimes)
	if got, _ := os.ReadFile(mine); string(got) != "mine" {
		t.Errorf("the user's file was overwritten: %q", got)
	}
	if n := outInt(t, res, "files"); n != int64(len(want)) {
		t.Errorf("files = %d, want %d", n, len(want))
	}
	sk := listOf(t, res, "skipped")
	if len(sk) != 1 || sk[0].GetAttr("path").AsString() != "Documents/a b.txt" || !strings.Contains(sk[0].GetAttr("reason").AsString(), "exists at the target") {
		t.Errorf("skipped = %#v", res.Outputs.GetAttr("skipped"))
	}
	if e := listOf(t, res, "errors"); len(e) != 0 {
		t.Errorf("errors = %v", e)
	}
	cz.Mu.Lock()
	posts := append([]cozyPost(nil), cz.Posts...)
	cz.Mu.Unlock()
	hellos := 0
	for _, po := range posts {
		if po.Name == "hello.txt" {
			hellos++
			if want := cozyTime(mtimes["hello.txt"]); po.UpdatedAt != want || po.CreatedAt != want {
				t.Errorf("hello.txt uploaded with CreatedAt %q UpdatedAt %q, want %s", po.CreatedAt, po.UpdatedAt, want)
			}
		}
	}
	if hellos != 2 {
		t.Errorf("hello.txt uploaded %d times, want 2 (the first arrived damaged: 412)", hellos)
	}
	if _, err := os.Stat(filepath.Join(state, "spool")); err != nil {
		t.Errorf("big.bin was not spooled to disk: %v", err)
	} else if ents, _ := os.ReadDir(filepath.Join(state, "spool")); len(ents) != 0 {
		t.Errorf("spool left behind: %v", ents)
	}
	led, _ := os.ReadFile(res.Outputs.GetAttr("ledger").AsString())
	noCanary(t, "copy to cozy", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"), string(led), string(res.UndoState))

	// Applied again as a retry of the step: nothing is sent again.
	res2, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "test-run/copy/2"})
	if err != nil {
		t.Fatal(err)
	}
	cz.Mu.Lock()
	again := len(cz.Posts) - len(posts)
	cz.Mu.Unlock()
	if again != 0 || outInt(t, res2, "resumed") != int64(len(want)) {
		t.Errorf("second apply uploaded %d files, resumed %d", again, outInt(t, res2, "resumed"))
	}

	// Someone edits a copied file: undo leaves it and names it.
	edited := filepath.Join(cz.Root, "Nextcloud", "Photos", "été", "プロジェクト.jpg")
	if err := os.WriteFile(edited, []byte("edited in the Cozy"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState})
	sdktest.AssertKind(t, err, sdk.KindConflict)
	if err == nil || !strings.Contains(err.Error(), "プロジェクト.jpg") {
		t.Errorf("drift error does not name the file: %v", err)
	}
	if _, err := os.Stat(edited); err != nil {
		t.Errorf("edited file removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cz.Root, "Nextcloud", "hello.txt")); err == nil {
		t.Error("undo left an unchanged copied file")
	}
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(edited); err == nil {
		t.Error("forced undo left the edited file")
	}
	ents, _ := os.ReadDir(filepath.Join(cz.Root, "Nextcloud"))
	if len(ents) != 1 || ents[0].Name() != "Documents" {
		t.Errorf("after undo /Nextcloud holds %v, want only Documents", ents)
	}
	if got, _ := os.ReadFile(mine); string(got) != "mine" {
		t.Errorf("undo touched the user's file: %q", got)
	}

	t.Run("bad token", func(t *testing.T) {
		bad := copyIn(nc.URL, map[string]any{"target_url": cz.URL, "target_token": "wrong-" + canary, "target_vendor": "cozy",
			"target_path": "/Other", "state_dir": t.TempDir()})
		_, rec, err := sdktest.Apply(t, p, "copy", bad)
		sdktest.AssertKind(t, err, sdk.KindAuth)
		noCanary(t, "auth error", err.Error(), strings.Join(rec.Logs(), "\n"))
	})
	t.Run("quota", func(t *testing.T) {
		cz.Mu.Lock()
		cz.Quota = 2000
		cz.Mu.Unlock()
		q := copyIn(nc.URL, map[string]any{"target_url": cz.URL, "target_token": canary, "target_vendor": "cozy",
			"target_path": "/Quota", "state_dir": t.TempDir(), "concurrency": 1})
		_, _, err := sdktest.Apply(t, p, "copy", q)
		sdktest.AssertKind(t, err, sdk.KindQuota)
		if se := sdk.Classify(err); se.Retryable || !strings.Contains(err.Error(), "413") {
			t.Errorf("quota error: %v", err)
		}
	})
	t.Run("no token", func(t *testing.T) {
		d, err := sdktest.Validate(t, p, "copy", copyIn(nc.URL, map[string]any{"target_url": cz.URL, "target_vendor": "cozy"}))
		if err != nil || !d.HasErrors() || !strings.Contains(d.Err().Error(), "target_token") {
			t.Errorf("validate without a token: %v %v", d, err)
		}
	})
}

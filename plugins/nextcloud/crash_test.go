package nextcloud

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestCopyCrashWindow kills the plugin process (SIGKILL, from inside, at
// the exact point) after a file's upload and before its ledger line, on a
// local, a WebDAV (Apache mod_dav) and a Cozy (files API stand-in) target. The resumed copy re-checks
// the file against the source and records it without sending it again;
// the undo removes it. When the file was changed at the target since, the
// resumed copy leaves it and reports it in skipped[], and the undo leaves
// it and fails with a conflict naming it.
func TestCopyCrashWindow(t *testing.T) {
	src := apache(t)
	tree := map[string]string{"a.txt": "aaa", "d/crash.txt": "the file uploaded when the copy dies", "d/z.txt": "zzz"}
	seed(t, src, tree, time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC))
	nc := startNC(t, src)
	dstAp := apache(t)
	const crashed = "d/crash.txt"

	targets := []struct {
		name string
		in   func(t *testing.T) (map[string]any, string) // inputs, and the target's directory on disk
	}{
		{"local", func(t *testing.T) (map[string]any, string) {
			dst := filepath.Join(t.TempDir(), "out")
			return map[string]any{"target_dir": dst}, dst
		}},
		{"webdav", func(t *testing.T) (map[string]any, string) {
			sub := "Import-" + filepath.Base(t.Name())
			return map[string]any{"target_url": dstAp.URL, "target_login": testUser, "target_password": "backend-pw",
				"target_user_id": testUser, "target_path": sub}, filepath.Join(dstAp.Root, sub)
		}},
		{"cozy", func(t *testing.T) (map[string]any, string) {
			cz := startCozy(t, canary)
			return map[string]any{"target_url": cz.URL, "target_token": canary, "target_vendor": "cozy", "target_path": "/Nextcloud"},
				filepath.Join(cz.Root, "Nextcloud")
		}},
	}
	// crash runs a copy in a plugin process that dies in the window.
	crash := func(t *testing.T, in map[string]any, dir, state string) (ledgerFile string) {
		t.Setenv(crashEnv, crashed)
		prov, kill, err := sdktest.StartSelf()
		if err != nil {
			t.Fatal(err)
		}
		defer kill()
		if _, _, err := sdktest.Apply(t, prov, "copy", copyIn(nc.URL, in)); err == nil {
			t.Fatal("the copy did not die")
		}
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(crashed))); err != nil || string(b) != tree[crashed] {
			t.Fatalf("not uploaded before the crash: %q %v", b, err)
		}
		ledgerFile = ledgerPath(state, "test-run/copy/1")
		var intent, done bool
		_ = readLedger(ledgerFile, func(l ledgerLine) error {
			intent = intent || (l.Op == "intent" && l.Path == crashed)
			done = done || (l.Op == "file" && l.Path == crashed)
			return nil
		})
		if !intent || done {
			t.Fatalf("ledger after the crash: intent %v, file line %v", intent, done)
		}
		return ledgerFile
	}
	p := sdktest.Local(t, New())
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Run("unchanged", func(t *testing.T) {
				in, dir := tg.in(t)
				state := t.TempDir()
				in["state_dir"], in["concurrency"] = state, 1
				crash(t, in, dir, state)
				before, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(crashed)))

				res, rec := sdktest.MustApply(t, p, "copy", copyIn(nc.URL, in))
				checkTree(t, dir, tree, nil)
				after, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(crashed)))
				if before == nil || after == nil || !os.SameFile(before, after) {
					t.Errorf("%s sent again after the crash", crashed)
				}
				if n := outInt(t, res, "files"); n != 3 {
					t.Errorf("files = %d, want 3", n)
				}
				if n := outInt(t, res, "resumed"); n < 1 {
					t.Errorf("resumed = %d", n)
				}
				if sk := listOf(t, res, "skipped"); len(sk) != 0 {
					t.Errorf("skipped = %v", sk)
				}
				if !strings.Contains(strings.Join(rec.Logs(), "\n"), crashed+": uploaded before an interruption") {
					t.Errorf("logs: %v", rec.Logs())
				}
				if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: copyIn(nc.URL, in), UndoState: res.UndoState}); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					ents, _ := os.ReadDir(dir)
					t.Errorf("after undo the target holds %v (%v)", ents, err)
				}
			})
			t.Run("changed since", func(t *testing.T) {
				in, dir := tg.in(t)
				state := t.TempDir()
				in["state_dir"], in["concurrency"] = state, 1
				ledgerFile := crash(t, in, dir, state)
				changed := filepath.Join(dir, filepath.FromSlash(crashed))
				if err := os.WriteFile(changed, []byte("edited by the user after the crash"), 0o644); err != nil {
					t.Fatal(err)
				}
				// Resumed: left as it is, and reported.
				res, _ := sdktest.MustApply(t, p, "copy", copyIn(nc.URL, in))
				sk := listOf(t, res, "skipped")
				if len(sk) != 1 || sk[0].GetAttr("path").AsString() != crashed || !strings.Contains(sk[0].GetAttr("reason").AsString(), "other content") {
					t.Errorf("skipped = %v", res.Outputs.GetAttr("skipped"))
				}
				if b, _ := os.ReadFile(changed); string(b) != "edited by the user after the crash" {
					t.Errorf("the resumed copy touched the changed file: %q", b)
				}
				// The undo leaves it too, and says so.
				_, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: copyIn(nc.URL, in), UndoState: res.UndoState})
				sdktest.AssertKind(t, err, sdk.KindConflict)
				if err == nil || !strings.Contains(err.Error(), crashed) {
					t.Errorf("undo: %v, want a conflict naming %s", err, crashed)
				}
				if b, _ := os.ReadFile(changed); string(b) != "edited by the user after the crash" {
					t.Errorf("undo touched the changed file: %q", b)
				}
				if _, err := os.Stat(filepath.Join(dir, "a.txt")); !os.IsNotExist(err) {
					t.Errorf("undo left a.txt: %v", err)
				}
				// Undone straight from the crashed step's checkpoint, the
				// same: the file is left with a conflict.
				undo, _ := json.Marshal(copyState{Ledger: ledgerFile})
				_, err = sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: copyIn(nc.URL, in), UndoState: undo})
				sdktest.AssertKind(t, err, sdk.KindConflict)
			})
		})
	}
}

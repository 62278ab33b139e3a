package run

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// secretKeeper keeps a secret it found on the backend (in no input) in a
// checkpoint and in its undo state, both marked sensitive, and records
// the undo state it gets back.
type secretKeeper struct {
	secret string
	undone chan string
}

func (secretKeeper) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "keep", Inputs: []sdk.Attribute{{Name: "fail", Type: cty.Bool}}}
}

func (a secretKeeper) Apply(_ context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	if f := req.Inputs.GetAttr("fail"); !f.IsNull() && f.True() {
		return nil, sdk.Errorf(sdk.KindConflict, false, "", "fail")
	}
	if err := sdk.CheckpointSensitive(ev, []byte("cp:"+a.secret)); err != nil {
		return nil, err
	}
	return &sdk.Result{UndoState: []byte("undo:" + a.secret), SensitiveUndoState: true}, nil
}

func (a secretKeeper) Undo(_ context.Context, req *sdk.UndoRequest, _ sdk.Events) error {
	a.undone <- string(req.UndoState)
	return nil
}

type keeperProviders struct{ p sdk.Provider }

func (k keeperProviders) Provider(context.Context, string) (sdk.Provider, error) { return k.p, nil }

// TestMarkedUndoStateSealed: an undo state and a checkpoint the plugin
// marks sensitive never reach the journal in clear: sealed with a state
// key, not stored without one. The rollback of the same run still gets
// the undo state.
func TestMarkedUndoStateSealed(t *testing.T) {
	for _, withKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("key %v", withKey), func(t *testing.T) {
			b := make([]byte, 24)
			_, _ = rand.Read(b)
			secret := base64.RawURLEncoding.EncodeToString(b)
			act := secretKeeper{secret: secret, undone: make(chan string, 1)}
			cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(`
step "k.keep" "a" {
  rollback = native
}
step "k.keep" "b" {
  with       = { fail = true }
  depends_on = [step.a]
}
`)})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			dir := t.TempDir()
			meta := &journal.Meta{Started: time.Now()}
			j, err := journal.NewLocal(dir).Create(meta)
			if err != nil {
				t.Fatal(err)
			}
			var sealer *journal.Sealer
			if withKey {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				s, err := journal.NewSealer(key)
				if err != nil {
					t.Fatal(err)
				}
				sealer = s.ForRun(meta)
			}
			prov := sdk.Local(&sdk.Plugin{Name: "k", Actions: []sdk.Action{act}})
			res, err := Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: meta.ID}),
				Options{RunID: meta.ID, Providers: keeperProviders{prov}, Journal: j, Sealer: sealer})
			j.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.State != journal.RunRolledBack {
				t.Fatalf("state %s", res.State)
			}
			if got := <-act.undone; got != "undo:"+secret {
				t.Errorf("undo got %q", got)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "runs", meta.ID, "journal.ndjson"))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if strings.Contains(line, secret) || strings.Contains(line, base64.StdEncoding.EncodeToString([]byte("undo:"+secret))) ||
					strings.Contains(line, base64.StdEncoding.EncodeToString([]byte("cp:"+secret))) {
					t.Errorf("journal holds the secret in clear: %s", line)
				}
			}
			// With a key both are sealed and open again.
			_, st, err := journal.NewLocal(dir).Open(meta.ID)
			if err != nil {
				t.Fatal(err)
			}
			js := st.Steps["a"]
			if js == nil {
				t.Fatalf("step a not in the journal: %v", st.Steps)
			}
			got, ok := js.UndoState.Bytes(sealer.Bind(js.Address, fieldUndoState))
			if withKey && (!ok || string(got) != "undo:"+secret) {
				t.Errorf("sealed undo state does not open: %q %v", got, ok)
			}
			if !withKey && (ok || js.UndoState == nil || !js.UndoState.Redacted) {
				t.Errorf("without a key the undo state must be left out (redacted): %+v", js.UndoState)
			}
		})
	}
}

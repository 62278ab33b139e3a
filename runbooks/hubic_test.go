package runbooks_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/hubic"
	"github.com/runbookdev/runbook/plugins/hubic/hubictest"
	swiftplugin "github.com/runbookdev/runbook/plugins/swift"
	"github.com/runbookdev/runbook/sdk"
)

// hubicProviders hands the engine the hubic and swift plugins in-process
// and a core plugin whose approve and assert answer at once; it can fail
// step failAt's first apply.
func hubicProviders(failAt string) *stubProviders {
	return &stubProviders{failAt: failAt, plugins: map[string]func() *sdk.Plugin{
		"hubic": hubic.New,
		"swift": swiftplugin.New,
		"core":  stubCore(approveStub{}, assertStub{}),
	}}
}

// TestHubicExportRunbook runs hubic-export.hcl against a real Swift with
// the HubiC API stand-in in front of its first account: a run failing at
// verify is rolled back (the copy's undo empties the target), then a full
// run copies, verifies and, after the second approval, deletes the
// source.
func TestHubicExportRunbook(t *testing.T) {
	t.Parallel()
	s := testenv.StartSwift(t)
	api := hubictest.New("client", "client-secret", hubictest.Swift{AuthURL: s.AuthURL, User: s.Accounts[0].User, Key: s.Accounts[0].Key})
	defer api.Close()
	ctx := tctx(t)
	conn := func(i int) *swift.Connection {
		c := &swift.Connection{UserName: s.Accounts[i].User, ApiKey: s.Accounts[i].Key, AuthUrl: s.AuthURL, AuthVersion: 1}
		if err := c.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	sc, dc := conn(0), conn(1)
	want := map[string]string{}
	for _, cont := range []string{"default", "default_segments", "photos é"} {
		if err := sc.ContainerCreate(ctx, cont, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 12; i++ {
			name, body := fmt.Sprintf("dir/%d.txt", i), strings.Repeat(cont, i+1)
			if _, err := sc.ObjectPut(ctx, cont, name, strings.NewReader(body), true, "", "text/plain", nil); err != nil {
				t.Fatal(err)
			}
			want[cont+"/"+name] = body
		}
	}
	vars := map[string]string{
		"hubic_client_id": "client", "hubic_client_secret": "client-secret",
		"hubic_refresh_token": api.IssueRefreshToken("credentials.r,usage.r"), "hubic_api_url": api.URL,
		"target_auth_url": s.AuthURL, "target_user": s.Accounts[1].User, "target_key": s.Accounts[1].Key,
		"workers": "4",
	}
	targetNames := func() []string {
		names, err := dc.ContainerNamesAll(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}

	res := loadRunbook(t, "hubic-export.hcl", vars).apply(t, ctx, "", hubicProviders("verify").forRun)
	if res.State != journal.RunRolledBack {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if names := targetNames(); len(names) != 0 {
		t.Fatalf("target after rollback: %v", names)
	}

	vars["delete_source"] = "true"
	p := hubicProviders("")
	rb := loadRunbook(t, "hubic-export.hcl", vars)
	res = rb.apply(t, ctx, "", p.forRun)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for key, body := range want {
		cont, name, _ := strings.Cut(key, "/")
		got, err := dc.ObjectGetString(ctx, cont, name)
		if err != nil || got != body {
			t.Errorf("target %s: %q, %v", key, got, err)
		}
	}
	if names, _ := sc.ContainerNamesAll(ctx, nil); len(names) != 0 {
		t.Errorf("source after the delete: %v", names)
	}
	if n, _ := res.Outputs["objects"].AsBigFloat().Int64(); n != int64(len(want)) {
		t.Errorf("objects output = %d", n)
	}
	if len(p.prompts) != 2 || !strings.Contains(p.prompts[0], "36 objects") || !strings.Contains(p.prompts[0], "photos é") {
		t.Errorf("approval prompts: %q", p.prompts)
	}
	if strings.Contains(strings.Join(p.prompts, "\n"), "client-secret") {
		t.Error("a prompt shows the client secret")
	}
	// No secret in the journal: client secret, refresh token, target key,
	// nor the Swift token hubic.credentials output.
	secrets := []string{"client-secret", vars["hubic_refresh_token"], "testing2", "AUTH_tk"}
	_ = filepath.WalkDir(rb.store.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, sec := range secrets {
			if strings.Contains(string(b), sec) {
				t.Errorf("%s holds the secret %q", path, sec)
			}
		}
		return nil
	})
}

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/testenv"
)

func TestServeRefusesAnOpenAddressWithoutAuthentication(t *testing.T) {
	var out, errb strings.Builder
	err := runServe(context.Background(), &out, &errb, serveFlags{listen: "0.0.0.0:0", stateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "refusing to serve on 0.0.0.0:0 without authentication") {
		t.Fatalf("err = %v", err)
	}
	err = runServe(context.Background(), &out, &errb, serveFlags{listen: "127.0.0.1:0", clientCA: "ca.pem", stateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "-client-ca needs -tls-cert") {
		t.Fatalf("err = %v", err)
	}
}

// TestServeViewer: `runbook serve` lists the state directory's runs and
// draws a run's graph as `runbook graph -format mermaid` does; it stops on
// cancel.
func TestServeViewer(t *testing.T) {
	dir := t.TempDir()
	src := "step \"core.noop\" \"a\" {\n  with = {}\n}\nstep \"core.noop\" \"b\" {\n  with       = {}\n  depends_on = [step.a]\n}\n"
	path := filepath.Join(dir, "main.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(src))
	stateDir := filepath.Join(dir, ".runbook")
	j, err := journal.NewLocal(stateDir).Create(&journal.Meta{Runbook: "demo", Started: time.Now().UTC(),
		Files: []journal.FileHash{{Path: path, SHA256: hex.EncodeToString(sum[:])}}})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb syncBuffer
	go func() { done <- runServe(ctx, &out, &errb, serveFlags{listen: addr, stateDir: stateDir}) }()
	get := func(p string) string {
		t.Helper()
		for range 100 {
			resp, err := http.Get("http://" + addr + p)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
			}
			return string(b)
		}
		t.Fatalf("GET %s: the server does not answer; it said %s", p, errb.String())
		return ""
	}
	list := get("/api/runs")
	if !strings.Contains(list, `"runbook":"demo"`) {
		t.Fatalf("runs: %s", list)
	}
	id := list[strings.Index(list, `"id":"`)+6:][:26]
	var g struct{ Mermaid string }
	if err := json.Unmarshal([]byte(get("/api/runs/"+id+"/graph")), &g); err != nil || !strings.Contains(g.Mermaid, `a<br/>core.noop`) || !strings.Contains(g.Mermaid, "n0 --> n1") {
		t.Errorf("graph (%v): %s", err, g.Mermaid)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(out.String(), "serving the runs of "+stateDir+" at http://"+addr+"/") {
		t.Errorf("serve said %q", out.String())
	}
}

// TestServeListsCampaigns: on a state database, the viewer lists its
// campaigns with their targets counted by state.
func TestServeListsCampaigns(t *testing.T) {
	u := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := journal.Migrate(ctx, u); err != nil {
		t.Fatal(err)
	}
	db, st, err := func() (*journal.PGStore, *campaign.Store, error) {
		old := stateSpec
		stateSpec = u
		defer func() { stateSpec = old }()
		return openState(ctx)
	}()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	targets := []campaign.Target{{Line: 2, LockKey: "a"}, {Line: 3, LockKey: "b"}}
	if _, err := st.Start(ctx, campaign.Spec{Name: "move-cozies", Files: []string{"/nowhere/main.hcl"}, Targets: targets}); err != nil {
		t.Fatal(err)
	}

	old := stateSpec
	stateSpec = u
	t.Cleanup(func() { stateSpec = old })
	s, err := runsSession(t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	v, err := newViewer(s, serveFlags{listen: "127.0.0.1:0"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	srv := httptest.NewServer(v)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/campaigns")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Campaigns []struct {
			Name   string
			Counts map[string]int
		}
		Supported bool
	}
	if err := json.Unmarshal(b, &got); err != nil || !got.Supported || len(got.Campaigns) != 1 {
		t.Fatalf("campaigns (%v): %s", err, b)
	}
	c := got.Campaigns[0]
	total := 0
	for _, n := range c.Counts {
		total += n
	}
	if !strings.HasPrefix(c.Name, "move-cozies") || total != 2 {
		t.Errorf("campaign %+v, want move-cozies with 2 targets", c)
	}
}

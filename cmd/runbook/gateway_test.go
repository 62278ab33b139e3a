package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/plugins/hubic/hubictest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeHubicGateway: the command refuses to start without its
// secrets, and serves /auth/v1.0 checking the client's user and key (the
// Swift side is covered in plugins/hubic with the swift CLI and rclone).
func TestServeHubicGateway(t *testing.T) {
	// One context for both runs: cobra keeps a subcommand's first one.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rootCmd.SetArgs([]string{"serve", "hubic-gateway", "--client-id", "c"})
	if err := rootCmd.ExecuteContext(ctx); err == nil || !strings.Contains(err.Error(), "HUBIC_CLIENT_SECRET") {
		t.Fatalf("without secrets: %v", err)
	}
	api := hubictest.New("c", "s", hubictest.Swift{AuthURL: "http://127.0.0.1:1/auth/v1.0", User: "u:u", Key: "k"})
	defer api.Close()
	t.Setenv("HUBIC_CLIENT_SECRET", "s")
	t.Setenv("HUBIC_REFRESH_TOKEN", api.IssueRefreshToken("credentials.r"))
	t.Setenv("HUBIC_GATEWAY_KEY", "gw-key")
	out := &syncBuffer{}
	rootCmd.SetOut(out)
	rootCmd.SetErr(out)
	defer rootCmd.SetOut(nil)
	defer rootCmd.SetErr(nil)
	rootCmd.SetArgs([]string{"serve", "hubic-gateway", "--client-id", "c", "--api-url", api.URL, "--listen", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() { done <- rootCmd.ExecuteContext(ctx) }()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`at (http://\S+/auth/v1.0)`).FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("no address: %s", out.String())
	}
	get := func(user, key string) int {
		req, _ := http.NewRequest("GET", addr, nil)
		req.Header.Set("X-Auth-User", user)
		req.Header.Set("X-Auth-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("hubic", "wrong"); c != http.StatusForbidden {
		t.Errorf("wrong key: %d", c)
	}
	// The right key reaches the API, whose Swift is down here: 502.
	if c := get("hubic", "gw-key"); c != http.StatusBadGateway {
		t.Errorf("right key: %d", c)
	}
	if api.Calls("/1.0/account/credentials") != 1 {
		t.Errorf("credentials calls = %d", api.Calls("/1.0/account/credentials"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if s := out.String(); strings.Contains(s, "gw-key") || strings.Contains(s, "rt-") {
		t.Errorf("a secret in the output: %s", s)
	}
}

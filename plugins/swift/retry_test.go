package swift

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/hubic"
	"github.com/runbookdev/runbook/plugins/hubic/hubicapi"
	"github.com/runbookdev/runbook/plugins/hubic/hubictest"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestCopyRetriesTransientStatuses: in front of the real Swift, a proxy
// answers the first GET of some objects with each status rclone retries
// (408, 409, 429, 500, 503, 504); the copy retries each object once and
// finishes, and a 503's Retry-After is waited for.
func TestCopyRetriesTransientStatuses(t *testing.T) {
	s := testenv.SharedSwift(t) // not parallel: it sets retryPause
	sc := account(t, s, 0)
	cont := unique(t, "retries")
	mkcont(t, sc, cont, nil)
	statuses := []int{408, 409, 429, 500, 503, 504}
	for i := range 10 {
		put(t, sc, cont, "o"+itoa(int64(i)), []byte(strings.Repeat("r", 100*i)), "", nil)
	}
	var mu sync.Mutex
	gets := map[string]int{}
	var first503, second503 time.Time
	storage := faultProxy(t, s, func(w http.ResponseWriter, r *http.Request) bool {
		name := path.Base(r.URL.Path)
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/"+cont+"/") {
			mu.Lock()
			gets[name]++
			n := gets[name]
			var i int
			_, serr := fmt.Sscan(strings.TrimPrefix(name, "o"), &i)
			if serr == nil && i < len(statuses) && statuses[i] == 503 {
				if n == 1 {
					first503 = time.Now()
				} else if n == 2 {
					second503 = time.Now()
				}
			}
			mu.Unlock()
			if serr == nil && i < len(statuses) && n == 1 {
				if statuses[i] == 503 {
					w.Header().Set("Retry-After", "2")
				}
				http.Error(w, "injected", statuses[i])
				return true
			}
		}
		return false
	})
	saved := retryPause
	retryPause = 10 * time.Millisecond
	defer func() { retryPause = saved }()
	in := objIn(map[string]any{"source_storage_url": storage, "source_token": sc.AuthToken, "containers": []string{cont}, "target_dir": t.TempDir()})
	res, _, err := sdktest.ApplyRequest(t, sdk.Local(New()), "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if c := outInt(t, res, "copied"); c != 10 {
		t.Errorf("copied %d, want 10", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if d := second503.Sub(first503); d < 2*time.Second {
		t.Errorf("the 503's object was asked again after %v: its Retry-After of 2 s was not waited for", d)
	}
	for i := range 10 {
		want := 1
		if i < len(statuses) {
			want = 2
		}
		if n := gets["o"+itoa(int64(i))]; n != want {
			t.Errorf("o%d fetched %d times, want %d", i, n, want)
		}
	}
}

// faultProxy starts a proxy in front of the real Swift that lets inject
// answer a request itself (returning true), and returns the first
// account's storage URL through it.
func faultProxy(t *testing.T, s *testenv.Swift, inject func(http.ResponseWriter, *http.Request) bool) string {
	up, _ := url.Parse(s.AuthURL)
	up.Path = ""
	rp := httputil.NewSingleHostReverseProxy(up)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !inject(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + strings.TrimPrefix(s.Accounts[0].StorageURL, up.String())
}

// TestDeleteRetriesBulkDelete: swift.delete sends a bulk delete that Swift
// answered with 503 and a Retry-After again, after waiting, and empties
// the container.
func TestDeleteRetriesBulkDelete(t *testing.T) {
	s := testenv.SharedSwift(t) // not parallel: it sets retryPause
	sc := account(t, s, 0)
	cont := unique(t, "bulk")
	mkcont(t, sc, cont, nil)
	for i := range 5 {
		put(t, sc, cont, "b/"+itoa(int64(i)), []byte("bulk"), "", nil)
	}
	saved := retryPause
	retryPause = 10 * time.Millisecond
	defer func() { retryPause = saved }()
	var mu sync.Mutex
	var posts []time.Time
	storage := faultProxy(t, s, func(w http.ResponseWriter, r *http.Request) bool {
		if !r.URL.Query().Has("bulk-delete") { // POST, or DELETE as ncw/swift sends it
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		posts = append(posts, time.Now())
		if len(posts) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "injected", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	in := objIn(map[string]any{"storage_url": storage, "token": sc.AuthToken, "containers": []string{cont}})
	res, _, err := sdktest.ApplyRequest(t, sdk.Local(New()), "delete", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if n := outInt(t, res, "deleted"); n != 5 {
		t.Errorf("deleted %d, want 5", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 2 {
		t.Fatalf("%d bulk deletes, want 2", len(posts))
	}
	if d := posts[1].Sub(posts[0]); d < time.Second {
		t.Errorf("sent again after %v, before the Retry-After of 1 s", d)
	}
	if _, _, err := sc.Container(tctx(t), cont); err == nil {
		t.Error("the container is still there")
	}
}

// TestCopyThroughGatewayRenewsOn401: a copy whose source is `runbook
// serve hubic-gateway` (Swift v1 auth backed by OAuth, no expiry header)
// gets a 401 when Swift drops its token mid-copy, authenticates again
// through the gateway and finishes.
func TestCopyThroughGatewayRenewsOn401(t *testing.T) {
	s := testenv.SharedSwift(t) // not parallel: it expires every token
	sc := account(t, s, 0)
	cont := unique(t, "gateway")
	mkcont(t, sc, cont, nil)
	for i := range 30 {
		put(t, sc, cont, "g/"+itoa(int64(i)), []byte(strings.Repeat("g", 50*i)), "", nil)
	}
	h := hubictest.New("cid", "csecret", hubictest.Swift{AuthURL: s.AuthURL, User: s.Accounts[0].User, Key: s.Accounts[0].Key})
	defer h.Close()
	var mu sync.Mutex
	auths := 0
	g := &hubic.Gateway{Client: hubicapi.New(hubicapi.Config{APIURL: h.URL, ClientID: "cid", ClientSecret: "csecret"}, h.IssueRefreshToken("credentials.r")),
		User: "hubic", Key: "gw-key"}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths++
		mu.Unlock()
		g.ServeHTTP(w, r)
	}))
	defer gw.Close()
	afterWrite = func(n int64) {
		if n == 10 {
			if err := s.ExpireTokens(); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { afterWrite = nil }()
	in := objIn(map[string]any{"source_auth_url": gw.URL + "/auth/v1.0", "source_user": "hubic", "source_key": "gw-key",
		"containers": []string{cont}, "target_dir": t.TempDir(), "workers": 2})
	res, _, err := sdktest.ApplyRequest(t, sdk.Local(New()), "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatalf("copy through the gateway: %v", err)
	}
	if c := outInt(t, res, "copied"); c != 30 {
		t.Errorf("copied %d, want 30", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if auths < 2 {
		t.Errorf("authenticated %d times through the gateway, want a second time after the 401", auths)
	}
	if n := h.Calls("/1.0/account/credentials"); n < 2 {
		t.Errorf("the gateway fetched credentials %d times, want new ones after Swift dropped the token", n)
	}
}

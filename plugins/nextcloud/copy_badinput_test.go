package nextcloud

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestCopyBadInput: a wrong password stops nextcloud.copy with an auth
// error after one request (no retry loop: Nextcloud throttles failed
// logins) without printing it; a Nextcloud target answering 503, 423 and
// 429 with Retry-After gets each upload again after the wait, and the
// progress reported ends at the bytes copied.
func TestCopyBadInput(t *testing.T) {
	t.Parallel()
	ap := apache(t)
	tree := map[string]string{"x.txt": "503 once", "y.txt": "423 once", "z.txt": "429 once, longer"}
	seed(t, ap, tree, time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC))
	nc := startNC(t, ap)
	p := sdktest.Local(t, New())

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "wrong-pw-canary-42"
		count := func() int {
			nc.Mu.Lock()
			defer nc.Mu.Unlock()
			n := 0
			for _, c := range nc.Requests {
				n += c
			}
			return n
		}
		before := count()
		_, rec, err := sdktest.Apply(t, p, "copy", copyIn(nc.URL, map[string]any{"password": wrong,
			"target_dir": filepath.Join(t.TempDir(), "out"), "state_dir": t.TempDir()}))
		sdktest.AssertKind(t, err, sdk.KindAuth)
		if n := count() - before; n != 1 {
			t.Errorf("%d requests with a wrong password, want 1", n)
		}
		if err != nil && strings.Contains(err.Error(), wrong) || strings.Contains(strings.Join(rec.Logs(), "\n"), wrong) {
			t.Errorf("the password shows: %v %v", err, rec.Logs())
		}
	})

	t.Run("target answers 503, 423 and 429 with Retry-After", func(t *testing.T) {
		dst := apache(t)
		ndst := startNC(t, dst)
		var mu sync.Mutex
		puts := map[string]int{}
		ndst.Mu.Lock()
		ndst.Fault = func(r *http.Request) (int, string) {
			if r.Method != http.MethodPut {
				return 0, ""
			}
			mu.Lock()
			defer mu.Unlock()
			name := filepath.Base(r.URL.Path)
			puts[name]++
			if puts[name] > 1 {
				return 0, ""
			}
			return map[string]int{"x.txt": http.StatusServiceUnavailable, "y.txt": http.StatusLocked, "z.txt": http.StatusTooManyRequests}[name], "1"
		}
		ndst.Mu.Unlock()
		in := copyIn(nc.URL, map[string]any{"target_url": ndst.URL, "target_login": testLogin, "target_password": canary,
			"target_path": "Import", "target_vendor": "nextcloud", "state_dir": t.TempDir(), "concurrency": 3})
		start := time.Now()
		res, rec := sdktest.MustApply(t, p, "copy", in)
		if el := time.Since(start); el < time.Second {
			t.Errorf("Retry-After not honoured: took %s", el)
		}
		checkTree(t, filepath.Join(dst.Root, "Import"), tree, nil)
		mu.Lock()
		for name := range tree {
			if puts[name] != 2 {
				t.Errorf("%s uploaded %d times, want 2", name, puts[name])
			}
		}
		mu.Unlock()
		if e := listOf(t, res, "errors"); len(e) != 0 {
			t.Errorf("errors = %v", e)
		}
		var bytes int64
		for _, c := range tree {
			bytes += int64(len(c))
		}
		pe := rec.ProgressEvents()
		if len(pe) == 0 || pe[len(pe)-1].Current != bytes || pe[len(pe)-1].Total != bytes || pe[len(pe)-1].Unit != "bytes" {
			t.Errorf("progress = %+v, want it to end at %d of %d bytes", pe, bytes, bytes)
		}
	})
}

package nextcloud

import (
	"net/http"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestProbe proves the probe against the OCS endpoint of the harness
// (Nextcloud behaviour) in front of Apache mod_dav: the DAV user id differs
// from the login, a wrong password fails once as auth and is never
// retried, maintenance is retryable, a server without OCS gives its real
// status, a closed port is unreachable, and the password shows nowhere.
func TestProbe(t *testing.T) {
	t.Parallel()
	dav := apache(t)
	nc := startNC(t, dav)
	provs := sdktest.Providers(t, New())
	for name, p := range provs {
		t.Run(name, func(t *testing.T) {
			res, rec := sdktest.MustApply(t, p, "probe", connIn(nc.URL, nil))
			sdktest.AssertOutput(t, res, "user_id", cty.StringVal(testUser))
			sdktest.AssertOutput(t, res, "display_name", cty.StringVal("Alice Liddell"))
			sdktest.AssertOutput(t, res, "quota_total", cty.NumberIntVal(10737418240))
			sdktest.AssertOutput(t, res, "quota_used", cty.NumberIntVal(1073741824))
			sdktest.AssertOutput(t, res, "dav_url", cty.StringVal(nc.URL+"/remote.php/dav/files/alice"))
			noCanary(t, "probe", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"))
		})
	}
	p := provs["local"]

	t.Run("wrong password is auth, sent once", func(t *testing.T) {
		nc.Mu.Lock()
		nc.OCSCalls = 0
		nc.Mu.Unlock()
		in := sdktest.Object(map[string]any{"url": nc.URL, "login": testLogin, "password": canary + "-wrong"})
		res, rec, err := sdktest.Apply(t, p, "probe", in)
		sdktest.AssertKind(t, err, sdk.KindAuth)
		if se := sdk.Classify(err); se.Retryable || !strings.Contains(se.Hint, "throttled") {
			t.Errorf("auth error: retryable=%v hint=%q", se.Retryable, se.Hint)
		}
		nc.Mu.Lock()
		calls := nc.OCSCalls
		nc.Mu.Unlock()
		if calls != 1 {
			t.Errorf("OCS requests after a wrong password = %d, want exactly 1", calls)
		}
		var out string
		if res != nil {
			out = outputsJSON(res.Outputs)
		}
		noCanary(t, "probe with a wrong password", err.Error(), out, strings.Join(rec.Logs(), "\n"))
	})

	t.Run("maintenance is retryable", func(t *testing.T) {
		nc.Mu.Lock()
		nc.Maintenance = true
		nc.Mu.Unlock()
		defer func() { nc.Mu.Lock(); nc.Maintenance = false; nc.Mu.Unlock() }()
		_, _, err := sdktest.Apply(t, p, "probe", connIn(nc.URL, nil))
		sdktest.AssertKind(t, err, sdk.KindUnreachable)
		if !sdk.Classify(err).Retryable || !strings.Contains(err.Error(), "503") {
			t.Errorf("maintenance: %v", err)
		}
	})

	t.Run("no OCS endpoint gives the real status and body", func(t *testing.T) {
		// Apache mod_dav has no /ocs: its own 404 page comes back.
		in := sdktest.Object(map[string]any{"url": dav.URL, "login": testUser, "password": "backend-pw"})
		_, _, err := sdktest.Apply(t, p, "probe", in)
		sdktest.AssertKind(t, err, sdk.KindNotFound)
		if !strings.Contains(err.Error(), "HTTP 404") || !strings.Contains(err.Error(), "Not Found") {
			t.Errorf("404: %v", err)
		}
	})

	t.Run("other status", func(t *testing.T) {
		nc.Mu.Lock()
		nc.Fault = func(r *http.Request) (int, string) { return http.StatusTeapot, "" }
		nc.Mu.Unlock()
		defer func() { nc.Mu.Lock(); nc.Fault = nil; nc.Mu.Unlock() }()
		_, _, err := sdktest.Apply(t, p, "probe", connIn(nc.URL, nil))
		if err == nil || !strings.Contains(err.Error(), "HTTP 418") || !strings.Contains(err.Error(), "teapot") {
			t.Errorf("418: %v", err)
		}
	})

	t.Run("closed port is unreachable", func(t *testing.T) {
		url := "http://127.0.0.1:" + itoa(testenv.FreePort(t))
		_, _, err := sdktest.Apply(t, p, "probe", connIn(url, nil))
		sdktest.AssertKind(t, err, sdk.KindUnreachable)
		noCanary(t, "unreachable", err.Error())
	})

	t.Run("bad URL is invalid", func(t *testing.T) {
		diags, _ := sdktest.Validate(t, p, "probe", connIn("ftp://x", nil))
		if !diags.HasErrors() {
			t.Error("ftp URL accepted")
		}
	})
}

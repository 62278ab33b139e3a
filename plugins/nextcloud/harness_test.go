package nextcloud

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

func TestMain(m *testing.M) {
	// A plugin process started with this variable kills itself (SIGKILL)
	// between that file's upload and its ledger line.
	if rel := os.Getenv(crashEnv); rel != "" {
		afterPut = func(p string) {
			if p == rel {
				self, _ := os.FindProcess(os.Getpid())
				_ = self.Kill()
				select {}
			}
		}
	}
	sdktest.Main(m, New())
}

const crashEnv = "RUNBOOK_TEST_NEXTCLOUD_CRASH_AFTER"

// canary is the password of every test account: it must never appear in
// an error, a log line, an output or a file the plugin writes.
const canary = "canary-S3cret-7f3a9"

// login differs from the user id, as when users log in with an e-mail.
const (
	testLogin = "alice@example.net"
	testUser  = "alice"
)

// apache starts Apache mod_dav for the test account (the server's own
// login is the user id; the ncServer in front checks the e-mail login).
// startNC puts the Nextcloud stand-in (internal/testenv) in front of a
// real server: the test account logs in with an e-mail and the canary.
func startNC(t *testing.T, backend *testenv.WebDAV) *testenv.NextcloudFront {
	t.Helper()
	return testenv.StartNextcloudFront(t, backend, testLogin, canary)
}

func apache(t *testing.T) *testenv.WebDAV {
	t.Helper()
	return testenv.StartApacheDAV(t, testUser, "backend-pw")
}

// seed writes files (relative path → content) into a server's tree, with
// mtimes one hour apart starting at base, and gives them to the server.
func seed(t *testing.T, w *testenv.WebDAV, files map[string]string, base time.Time) map[string]time.Time {
	t.Helper()
	mtimes := map[string]time.Time{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		p := filepath.Join(w.Root, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		mtimes[n] = mt
	}
	w.Own(t)
	return mtimes
}

// setDeadProps stores oc:fileid and oc:checksums on a file of the real
// server as dead properties (PROPPATCH), the way Nextcloud exposes them.
func setDeadProps(t *testing.T, w *testenv.WebDAV, rel, fileid, checksums string) {
	t.Helper()
	body := `<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:set><d:prop>` +
		`<oc:fileid>` + fileid + `</oc:fileid><oc:checksums><oc:checksum>` + checksums + `</oc:checksum></oc:checksums>` +
		`</d:prop></d:set></d:propertyupdate>`
	req, _ := http.NewRequest("PROPPATCH", w.URL+escapePath(w.DAVPath()+"/"+rel), bytes.NewReader([]byte(body)))
	req.SetBasicAuth(w.User, w.Password)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus || !strings.Contains(string(b), "200") {
		t.Fatalf("PROPPATCH %s: %s %s", rel, resp.Status, b)
	}
}

// conn inputs for a server, with the canary password.
func connIn(url string, extra map[string]any) cty.Value {
	m := map[string]any{"url": url, "login": testLogin, "password": canary}
	for k, v := range extra {
		m[k] = v
	}
	return sdktest.Object(m)
}

// noCanary fails when the password shows in any of the strings.
func noCanary(t *testing.T, what string, ss ...string) {
	t.Helper()
	for _, s := range ss {
		if strings.Contains(s, canary) {
			t.Errorf("%s leaks the password: %s", what, s)
		}
	}
}

// outputsJSON renders outputs for canary checks.
func outputsJSON(v cty.Value) string {
	if v == cty.NilVal {
		return ""
	}
	b, _ := ctyjson.Marshal(v, v.Type())
	return string(b)
}

func outInt(t *testing.T, res *sdk.Result, name string) int64 {
	t.Helper()
	v := res.Outputs.GetAttr(name)
	i, _ := v.AsBigFloat().Int64()
	return i
}

func itoa(i int) string { return strconv.Itoa(i) }

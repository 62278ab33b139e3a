package nextcloud

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

func TestMain(m *testing.M) { sdktest.Main(m, New()) }

// canary is the password of every test account: it must never appear in
// an error, a log line, an output or a file the plugin writes.
const canary = "canary-S3cret-7f3a9"

// login differs from the user id, as when users log in with an e-mail.
const (
	testLogin = "alice@example.net"
	testUser  = "alice"
)

// ncServer stands in for what only Nextcloud's PHP app does, in front of a
// real WebDAV server (Apache mod_dav or rclone): the OCS user endpoint,
// login names that differ from the user id, X-OC-Mtime on PUT, chunked
// upload v2 (/remote.php/dav/uploads), quota (507) and injected 423, 429
// and 503 answers and dropped connections. Everything else (PROPFIND, GET,
// PUT, MKCOL, DELETE, dead oc: properties) is the real server's answer.
type ncServer struct {
	*httptest.Server
	backend *testenv.WebDAV
	proxy   *httputil.ReverseProxy
	uploads string

	mu          sync.Mutex
	ocsCalls    int
	maintenance bool
	// quota makes an upload whose OC-Total-Length or body exceeds it fail with 507 (0: none).
	quota int64
	// fault, when set, may answer a request instead of the server (status,
	// Retry-After); it returns 0 to let the request through.
	fault func(r *http.Request) (int, string)
	// dropAfter cuts the connection of the next GET of a path (relative to
	// the user's files) after that many bytes of the body, once.
	dropAfter map[string]int64
	depths    map[string]int // Depth headers seen on PROPFIND
	chunks    int            // chunk PUTs received
	requests  map[string]int // method → count
}

func startNC(t *testing.T, backend *testenv.WebDAV) *ncServer {
	t.Helper()
	bu, _ := url.Parse(backend.URL)
	s := &ncServer{backend: backend, uploads: t.TempDir(), dropAfter: map[string]int64{},
		depths: map[string]int{}, requests: map[string]int{}}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(bu)
			pr.Out.SetBasicAuth(backend.User, backend.Password)
		},
		ModifyResponse: s.afterPut,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *ncServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.Method]++
	if r.Method == "PROPFIND" {
		s.depths[r.Header.Get("Depth")]++
	}
	fault := s.fault
	s.mu.Unlock()
	if l, p, ok := r.BasicAuth(); !ok || l != testLogin || p != canary {
		if r.URL.Path == "/ocs/v2.php/cloud/user" {
			s.mu.Lock()
			s.ocsCalls++
			s.mu.Unlock()
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="Nextcloud"`)
		http.Error(w, `<?xml version="1.0"?><d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns"><s:message>No public access to this resource.</s:message></d:error>`, http.StatusUnauthorized)
		return
	}
	if fault != nil {
		if st, ra := fault(r); st != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, http.StatusText(st), st)
			return
		}
	}
	switch p := r.URL.Path; {
	case p == "/ocs/v2.php/cloud/user":
		s.ocs(w, r)
	case strings.HasPrefix(p, "/remote.php/dav/uploads/"+testUser+"/"):
		s.upload(w, r, strings.TrimPrefix(p, "/remote.php/dav/uploads/"+testUser+"/"))
	case strings.HasPrefix(p, "/remote.php/dav/files/"+testUser):
		if r.Method == http.MethodPut && s.overQuota(r.ContentLength) {
			http.Error(w, "Insufficient Storage", http.StatusInsufficientStorage)
			return
		}
		if r.Method == http.MethodGet {
			rel := strings.TrimPrefix(strings.TrimPrefix(p, "/remote.php/dav/files/"+testUser), "/")
			s.mu.Lock()
			n, ok := s.dropAfter[rel]
			delete(s.dropAfter, rel)
			s.mu.Unlock()
			if ok {
				w = &dropWriter{ResponseWriter: w, left: n}
			}
		}
		s.proxy.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *ncServer) overQuota(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quota > 0 && n > s.quota
}

// ocs answers GET /ocs/v2.php/cloud/user as Nextcloud does.
func (s *ncServer) ocs(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ocsCalls++
	maint := s.maintenance
	s.mu.Unlock()
	if maint {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"ocs":{"meta":{"status":"failure","statuscode":503,"message":"System in maintenance mode."},"data":[]}}`)
		return
	}
	if r.Header.Get("OCS-APIRequest") != "true" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"message":"CSRF check failed"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = io.WriteString(w, `{"ocs":{"meta":{"status":"ok","statuscode":200,"message":"OK"},"data":{"enabled":true,"storageLocation":"/var/www/data/alice","id":"alice","lastLogin":1733300000000,"backend":"Database","quota":{"free":9663676416,"used":1073741824,"total":10737418240,"relative":10,"quota":10737418240},"email":"alice@example.net","display-name":"Alice Liddell","phone":"","groups":["users"],"language":"fr"}}}`)
}

// afterPut sets the mtime X-OC-Mtime asked for, on the real server's file.
func (s *ncServer) afterPut(resp *http.Response) error {
	r := resp.Request
	if r.Method != http.MethodPut || resp.StatusCode/100 != 2 {
		return nil
	}
	if v := r.Header.Get("X-OC-Mtime"); v != "" {
		if s.setMtime(r.URL.Path, v) == nil {
			resp.Header.Set("X-OC-Mtime", "accepted")
		}
	}
	return nil
}

func (s *ncServer) setMtime(davPath, unix string) error {
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(davPath, "/remote.php/dav/files/"+testUser)
	t := time.Unix(sec, 0)
	return os.Chtimes(filepath.Join(s.backend.Root, filepath.FromSlash(rel)), t, t)
}

// upload is chunked upload v2: MKCOL the upload folder, PUT numbered
// chunks, MOVE .file to the destination (with X-OC-Mtime), DELETE aborts.
func (s *ncServer) upload(w http.ResponseWriter, r *http.Request, rest string) {
	dir := filepath.Join(s.uploads, filepath.FromSlash(strings.Split(rest, "/")[0]))
	if r.Header.Get("Destination") == "" {
		http.Error(w, "Destination header missing", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case "MKCOL":
		if n, _ := strconv.ParseInt(r.Header.Get("OC-Total-Length"), 10, 64); s.overQuota(n) {
			http.Error(w, "Insufficient Storage", http.StatusInsufficientStorage)
			return
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodPut:
		f, err := os.Create(filepath.Join(s.uploads, filepath.FromSlash(rest)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		_, err = io.Copy(f, r.Body)
		f.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.chunks++
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	case "MOVE":
		s.assemble(w, r, dir)
	case http.MethodDelete:
		_ = os.RemoveAll(dir)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not supported here", http.StatusMethodNotAllowed)
	}
}

func (s *ncServer) assemble(w http.ResponseWriter, r *http.Request, dir string) {
	dest, err := url.Parse(r.Header.Get("Destination"))
	if err != nil {
		http.Error(w, "bad Destination", http.StatusBadRequest)
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	var names []int
	files := map[int]string{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		names = append(names, n)
		files[n] = e.Name()
	}
	sort.Ints(names)
	var readers []io.Reader
	var total int64
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, files[n]))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, _ := f.Stat()
		total += st.Size()
		readers = append(readers, f)
	}
	if want, _ := strconv.ParseInt(r.Header.Get("OC-Total-Length"), 10, 64); want > 0 && want != total {
		http.Error(w, fmt.Sprintf("expected %d bytes, got %d", want, total), http.StatusBadRequest)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPut, s.backend.URL+dest.EscapedPath(), io.MultiReader(readers...))
	req.ContentLength = total
	req.SetBasicAuth(s.backend.User, s.backend.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		http.Error(w, "backend: "+resp.Status, resp.StatusCode)
		return
	}
	_ = os.RemoveAll(dir)
	if v := r.Header.Get("X-OC-Mtime"); v != "" && s.setMtime(dest.Path, v) == nil {
		w.Header().Set("X-OC-Mtime", "accepted")
	}
	w.Header().Set("OC-Etag", resp.Header.Get("ETag"))
	w.WriteHeader(http.StatusCreated)
}

// dropWriter cuts the connection once it has written its share of a body.
type dropWriter struct {
	http.ResponseWriter
	left int64
}

func (d *dropWriter) Write(b []byte) (int, error) {
	if int64(len(b)) >= d.left {
		n, _ := d.ResponseWriter.Write(b[:d.left])
		if f, ok := d.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		d.left = 0
		_ = n
		panic(http.ErrAbortHandler)
	}
	d.left -= int64(len(b))
	return d.ResponseWriter.Write(b)
}

func (d *dropWriter) Flush() {
	if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// apache starts Apache mod_dav for the test account (the server's own
// login is the user id; the ncServer in front checks the e-mail login).
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

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
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

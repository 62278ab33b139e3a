package testenv

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// WebDAV is a private WebDAV server on 127.0.0.1 serving one user's files
// at the Nextcloud path /remote.php/dav/files/USER, with Basic auth.
type WebDAV struct {
	// Kind is "apache" (httpd with mod_dav) or "rclone" (rclone serve webdav).
	Kind string
	// URL is the server root, e.g. http://127.0.0.1:PORT (no trailing slash).
	URL      string
	User     string
	Password string
	// Root is the directory served as the user's files.
	Root string
	// Dir holds the config, logs and lock database.
	Dir string
	// owner is the account Apache's workers run as (www-data when the tests
	// run as root), which must own what they may write.
	uid, gid int
}

// DAVPath is /remote.php/dav/files/USER.
func (w *WebDAV) DAVPath() string { return "/remote.php/dav/files/" + w.User }

// Own gives the whole served tree to the account the server runs as, so
// that files a test wrote there can be overwritten, moved and deleted
// through WebDAV. Call it after seeding files.
func (w *WebDAV) Own(t testing.TB) {
	t.Helper()
	if w.uid < 0 {
		return
	}
	// Apache writes and renames files of its own (the pid file's temporary
	// copy) while the walk runs: a file gone between listing and chown is
	// not an error.
	err := filepath.Walk(w.Dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, w.uid, w.gid)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatalf("chown %s: %v", w.Dir, err)
	}
}

// scratchDir is a directory other accounts can traverse (t.TempDir is
// 0700), removed when the test ends.
func scratchDir(t testing.TB, prefix string) string {
	t.Helper()
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// StartApacheDAV starts Apache httpd with mod_dav and mod_dav_fs on a free
// loopback port, with its own configuration in a temporary directory (no
// system service, no system config), and stops it when the test ends.
func StartApacheDAV(t testing.TB, userName, password string) *WebDAV {
	t.Helper()
	const bin = "/usr/sbin/apache2"
	const mods = "/usr/lib/apache2/modules"
	if _, err := os.Stat(filepath.Join(mods, "mod_dav_fs.so")); err != nil {
		Unavailable(t, "apache2 with mod_dav not installed (%v)", err)
	}
	dir := scratchDir(t, "runbook-apache-")
	w := &WebDAV{Kind: "apache", User: userName, Password: password, Dir: dir, uid: -1, gid: -1}
	w.Root = filepath.Join(dir, "htdocs", "remote.php", "dav", "files", userName)
	for _, d := range []string{w.Root, filepath.Join(dir, "run"), filepath.Join(dir, "lock")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runAs := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("www-data")
		if err != nil {
			Unavailable(t, "no www-data account for Apache's workers: %v", err)
		}
		w.uid, _ = strconv.Atoi(u.Uid)
		w.gid, _ = strconv.Atoi(u.Gid)
		runAs = "User www-data\nGroup www-data\n"
	}
	sum := sha1.Sum([]byte(password))
	writeFile(t, filepath.Join(dir, "htpasswd"), userName+":{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n", 0o644)
	w.Own(t)

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		w.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		conf := fmt.Sprintf(`ServerRoot /etc/apache2
PidFile %[1]s/run/httpd.pid
ErrorLog %[1]s/run/error.log
LogLevel warn
Listen 127.0.0.1:%[2]d
ServerName 127.0.0.1
%[3]sLoadModule mpm_event_module %[4]s/mod_mpm_event.so
LoadModule authz_core_module %[4]s/mod_authz_core.so
LoadModule authz_user_module %[4]s/mod_authz_user.so
LoadModule authn_core_module %[4]s/mod_authn_core.so
LoadModule authn_file_module %[4]s/mod_authn_file.so
LoadModule auth_basic_module %[4]s/mod_auth_basic.so
LoadModule dav_module %[4]s/mod_dav.so
LoadModule dav_fs_module %[4]s/mod_dav_fs.so
LoadModule mime_module %[4]s/mod_mime.so
LoadModule dir_module %[4]s/mod_dir.so
TypesConfig /etc/mime.types
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
Timeout 60
StartServers 2
ThreadsPerChild 32
MaxRequestWorkers 128
DAVLockDB %[1]s/lock/DAVLock
DocumentRoot %[1]s/htdocs
<Directory %[1]s/htdocs>
  Dav On
  AuthType Basic
  AuthName "runbook test"
  AuthUserFile %[1]s/htpasswd
  Require valid-user
</Directory>
`, dir, port, runAs, mods)
		cfg := filepath.Join(dir, "httpd.conf")
		writeFile(t, cfg, conf, 0o644)
		out, err := exec.Command(bin, "-f", cfg, "-k", "start").CombinedOutput()
		if err != nil {
			lastErr = fmt.Errorf("apache2 -k start: %v: %s", err, out)
			continue
		}
		pidFile := filepath.Join(dir, "run", "httpd.pid")
		t.Cleanup(func() { stopByPidFile(pidFile) })
		if lastErr = waitListening(fmt.Sprintf("127.0.0.1:%d", port), nil); lastErr == nil {
			return w
		}
		stopByPidFile(pidFile)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "run", "error.log"))
	Unavailable(t, "apache2 did not start: %v\n%s", lastErr, log)
	return nil
}

// stopByPidFile stops the process whose id a pid file holds, waiting up to
// 5 s for it to go.
func stopByPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(string(trimSpace(b)))
	if err != nil || pid <= 1 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Kill()
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// StartRcloneDAV starts `rclone serve webdav` on a free loopback port,
// serving a fresh directory, and stops it when the test ends.
func StartRcloneDAV(t testing.TB, userName, password string) *WebDAV {
	t.Helper()
	bin, err := exec.LookPath("rclone")
	if err != nil {
		Unavailable(t, "rclone not installed (%v)", err)
	}
	dir := scratchDir(t, "runbook-rclone-")
	w := &WebDAV{Kind: "rclone", User: userName, Password: password, Dir: dir, uid: -1, gid: -1,
		Root: filepath.Join(dir, "files")}
	if err := os.MkdirAll(w.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		w.URL = "http://" + addr
		logf, err := os.Create(filepath.Join(dir, "rclone.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", "webdav", w.Root, "--addr", addr, "--user", userName, "--pass", password,
			"--baseurl", w.DAVPath(), "--dir-cache-time", "1s", "--config", filepath.Join(dir, "rclone.conf"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			Unavailable(t, "start rclone: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logf.Close() }()
		if lastErr = waitListening(addr, exited); lastErr == nil {
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			return w
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "rclone.log"))
	Unavailable(t, "rclone serve webdav did not start: %v\n%s", lastErr, log)
	return nil
}

// NextcloudFront stands in for what only Nextcloud's PHP app does, in front of a
// real WebDAV server (Apache mod_dav or rclone): the OCS user endpoint,
// login names that differ from the user id, X-OC-Mtime on PUT, chunked
// upload v2 (/remote.php/dav/uploads), quota (507) and injected 423, 429
// and 503 answers and dropped connections. Everything else (PROPFIND, GET,
// PUT, MKCOL, DELETE, dead oc: properties) is the real server's answer.
type NextcloudFront struct {
	*httptest.Server
	Backend *WebDAV
	// Login and Password are what clients must send; UserID is the DAV
	// user id (the backend's user).
	Login, Password, UserID string

	proxy   *httputil.ReverseProxy
	uploads string

	Mu          sync.Mutex
	OCSCalls    int
	Maintenance bool
	// Quota makes an upload whose OC-Total-Length or body exceeds it fail with 507 (0: none).
	Quota int64
	// Fault, when set, may answer a request instead of the server (status,
	// Retry-After); it returns 0 to let the request through.
	Fault func(r *http.Request) (int, string)
	// DropAfter cuts the connection of the next GET of a path (relative to
	// the user's files) after that many bytes of the body, once.
	DropAfter map[string]int64
	Depths    map[string]int // Depth headers seen on PROPFIND
	Chunks    int            // chunk PUTs received
	Requests  map[string]int // method → count
}

// StartNextcloudFront serves the Nextcloud-only behaviours in front of a
// real WebDAV server whose user is userID, accepting login and password.
func StartNextcloudFront(t testing.TB, backend *WebDAV, login, password string) *NextcloudFront {
	t.Helper()
	bu, _ := url.Parse(backend.URL)
	s := &NextcloudFront{Backend: backend, Login: login, Password: password, UserID: backend.User, uploads: t.TempDir(), DropAfter: map[string]int64{},
		Depths: map[string]int{}, Requests: map[string]int{}}
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

func (s *NextcloudFront) serve(w http.ResponseWriter, r *http.Request) {
	s.Mu.Lock()
	s.Requests[r.Method]++
	if r.Method == "PROPFIND" {
		s.Depths[r.Header.Get("Depth")]++
	}
	fault := s.Fault
	s.Mu.Unlock()
	if l, p, ok := r.BasicAuth(); !ok || l != s.Login || p != s.Password {
		if r.URL.Path == "/ocs/v2.php/cloud/user" {
			s.Mu.Lock()
			s.OCSCalls++
			s.Mu.Unlock()
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
	case strings.HasPrefix(p, "/remote.php/dav/uploads/"+s.UserID+"/"):
		s.upload(w, r, strings.TrimPrefix(p, "/remote.php/dav/uploads/"+s.UserID+"/"))
	case strings.HasPrefix(p, "/remote.php/dav/files/"+s.UserID):
		if r.Method == http.MethodPut && s.overQuota(r.ContentLength) {
			http.Error(w, "Insufficient Storage", http.StatusInsufficientStorage)
			return
		}
		if r.Method == http.MethodGet {
			rel := strings.TrimPrefix(strings.TrimPrefix(p, "/remote.php/dav/files/"+s.UserID), "/")
			s.Mu.Lock()
			n, ok := s.DropAfter[rel]
			delete(s.DropAfter, rel)
			s.Mu.Unlock()
			if ok {
				w = &dropWriter{ResponseWriter: w, left: n}
			}
		}
		s.proxy.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *NextcloudFront) overQuota(n int64) bool {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.Quota > 0 && n > s.Quota
}

// ocs answers GET /ocs/v2.php/cloud/user as Nextcloud does.
func (s *NextcloudFront) ocs(w http.ResponseWriter, r *http.Request) {
	s.Mu.Lock()
	s.OCSCalls++
	maint := s.Maintenance
	s.Mu.Unlock()
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
	data := map[string]any{"enabled": true, "id": s.UserID, "backend": "Database", "email": s.Login, "display-name": "Alice Liddell",
		"quota":  map[string]any{"free": 9663676416, "used": 1073741824, "total": 10737418240, "relative": 10, "quota": 10737418240},
		"groups": []string{"users"}, "language": "fr"}
	_ = json.NewEncoder(w).Encode(map[string]any{"ocs": map[string]any{"meta": map[string]any{"status": "ok", "statuscode": 200, "message": "OK"}, "data": data}})
}

// afterPut sets the mtime X-OC-Mtime asked for, on the real server's file.
func (s *NextcloudFront) afterPut(resp *http.Response) error {
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

func (s *NextcloudFront) setMtime(davPath, unix string) error {
	sec, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(davPath, "/remote.php/dav/files/"+s.UserID)
	t := time.Unix(sec, 0)
	return os.Chtimes(filepath.Join(s.Backend.Root, filepath.FromSlash(rel)), t, t)
}

// upload is chunked upload v2: MKCOL the upload folder, PUT numbered
// chunks, MOVE .file to the destination (with X-OC-Mtime), DELETE aborts.
func (s *NextcloudFront) upload(w http.ResponseWriter, r *http.Request, rest string) {
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
		s.Mu.Lock()
		s.Chunks++
		s.Mu.Unlock()
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

func (s *NextcloudFront) assemble(w http.ResponseWriter, r *http.Request, dir string) {
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
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPut, s.Backend.URL+dest.EscapedPath(), io.MultiReader(readers...))
	req.ContentLength = total
	req.SetBasicAuth(s.Backend.User, s.Backend.Password)
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

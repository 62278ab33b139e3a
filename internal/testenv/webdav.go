package testenv

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
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
	err := filepath.Walk(w.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, w.uid, w.gid)
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

package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PouchDBDirEnv overrides where pouchdb-server is installed (the npm
// directory holding node_modules/pouchdb-server).
const PouchDBDirEnv = "RUNBOOK_POUCHDB_DIR"

// defaultPouchDBDir is used when the install script cannot be read; the
// script scripts/test-deps.d/20-pouchdb.sh is the reference.
const defaultPouchDBDir = "/opt/runbook-testdeps/pouchdb"

// CouchDB is a pouchdb-server process (a CouchDB 1.x-compatible server) on
// loopback, with an admin user, in a fresh directory.
type CouchDB struct {
	// URL is the base URL, without credentials.
	URL      string
	Username string
	Password string

	dir  string
	port int
	node string // path of node
	bin  string // path of pouchdb-server's launcher

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
}

// pouchDBDir finds the install directory: the environment, else the
// default written in the install script, else defaultPouchDBDir.
func pouchDBDir() string {
	if d := os.Getenv(PouchDBDirEnv); d != "" {
		return d
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "test-deps.d", "20-pouchdb.sh")
		if b, err := os.ReadFile(script); err == nil {
			if m := regexp.MustCompile(`RUNBOOK_POUCHDB_DIR:-([^}]+)}`).FindSubmatch(b); m != nil {
				return string(m[1])
			}
		}
	}
	return defaultPouchDBDir
}

// ErrNotInstalled is returned by NewCouchDB when node or pouchdb-server is
// missing.
var ErrNotInstalled = errors.New("not installed")

// StartCouchDB starts a fresh pouchdb-server for the calling test (or
// benchmark) with an admin "admin" and a random password, and stops it
// when the test ends. It skips (fails in CI) when node or pouchdb-server
// is not installed.
func StartCouchDB(t testing.TB) *CouchDB {
	t.Helper()
	c, err := NewCouchDB(t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		Unavailable(t, "couchdb: %v", err)
	}
	if err != nil {
		t.Fatalf("couchdb: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// NewCouchDB starts a pouchdb-server with its data in dir, outside of any
// one test (e.g. shared by a package's tests from TestMain). The caller
// stops it with Stop.
func NewCouchDB(dir string) (*CouchDB, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node: %w", ErrNotInstalled)
	}
	bin := filepath.Join(pouchDBDir(), "node_modules", "pouchdb-server", "bin", "pouchdb-server")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("pouchdb-server at %s: %w", bin, ErrNotInstalled)
	}
	var rnd [9]byte
	_, _ = rand.Read(rnd[:])
	pw := "pw-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(fmt.Sprintf(`{"admins":{"admin":%q},"log":{"level":"error"}}`, pw)), 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &CouchDB{Username: "admin", Password: pw, dir: dir, port: port, node: node, bin: bin}
	c.URL = fmt.Sprintf("http://127.0.0.1:%d", c.port)
	if err := c.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts the server again after Stop, on the same port and data.
func (c *CouchDB) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "out.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// --unhandled-rejections=warn: with an admin set, pouchdb-server raises
	// unhandled rejections on database-level 401s, which Node 20 would
	// otherwise exit on.
	cmd := exec.Command(c.node, "--unhandled-rejections=warn", c.bin,
		"--host", "127.0.0.1", "--port", strconv.Itoa(c.port),
		"--dir", filepath.Join(c.dir, "data"), "--config", filepath.Join(c.dir, "config.json"), "-n")
	cmd.Dir = c.dir // log.txt goes to the working directory
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start pouchdb-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			c.cmd = nil
			b, _ := os.ReadFile(filepath.Join(c.dir, "out.log"))
			return fmt.Errorf("pouchdb-server exited at start: %s", tail(b, 2000))
		default:
		}
		req, _ := http.NewRequest("GET", c.URL+"/_all_dbs", nil)
		req.SetBasicAuth(c.Username, c.Password)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stopLocked()
	return fmt.Errorf("pouchdb-server did not answer on %s within 30 s", c.URL)
}

// Stop stops the server (the data stays for Start).
func (c *CouchDB) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

func (c *CouchDB) stopLocked() {
	if c.cmd == nil {
		return
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-c.done
	}
	c.cmd = nil
}

// AuthURL is the base URL with the admin's credentials in it.
func (c *CouchDB) AuthURL() string {
	return fmt.Sprintf("http://%s:%s@127.0.0.1:%d", c.Username, c.Password, c.port)
}

// Log returns the server's output so far, for test failure messages.
func (c *CouchDB) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "out.log"))
	return tail(b, 4000)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SwiftAccount is a tempauth account of the all-in-one Swift.
type SwiftAccount struct {
	// User is "account:user", as X-Auth-User and `swift -U` take it.
	User string
	// Key is the user's key (X-Auth-Key).
	Key string
	// StorageURL is the account's storage URL.
	StorageURL string
}

// Swift is an OpenStack Swift all-in-one on loopback (proxy with tempauth,
// bulk, SLO, DLO and container quotas; one account, container and object
// server; memcached for the tokens), in a fresh directory, with two
// accounts.
type Swift struct {
	// URL is the proxy's base URL; AuthURL its v1.0 auth endpoint.
	URL     string
	AuthURL string
	// Accounts are test:tester (key testing) and test2:tester2 (key testing2).
	Accounts [2]SwiftAccount

	dir   string
	opts  SwiftOptions
	ports map[string]int // proxy, account, container, object, memcached

	mu    sync.Mutex // guards procs
	procs map[string]*exec.Cmd
}

// swiftServers are the processes of the all-in-one, in start order.
var swiftServers = []string{"memcached", "account", "container", "object", "cupd", "proxy"}

// SwiftOptions change how the all-in-one runs.
type SwiftOptions struct {
	// UpdaterInterval is the seconds between two passes of the container
	// updater, which brings the account's totals up to date (default 5:
	// tests read them soon after writing). Benchmarks lengthen it so that
	// its passes do not compete with the measured tools for the CPU.
	UpdaterInterval int
}

// StartSwift starts a Swift all-in-one for the calling test and stops it
// when the test ends. It takes about ten seconds: a package's tests share
// one with SharedSwift.
func StartSwift(t testing.TB) *Swift {
	t.Helper()
	return StartSwiftWith(t, SwiftOptions{})
}

// StartSwiftWith is StartSwift with options.
func StartSwiftWith(t testing.TB, o SwiftOptions) *Swift {
	t.Helper()
	s, err := newSwift(t.TempDir(), o)
	if errors.Is(err, ErrNotInstalled) {
		Unavailable(t, "swift: %v", err)
	}
	if err != nil {
		t.Fatalf("swift: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

var shared struct {
	once sync.Once
	s    *Swift
	dir  string
	err  error
}

// SharedSwift starts one Swift all-in-one for the whole test binary on
// first use; the package's TestMain stops it with StopSharedSwift. Tests
// sharing it use their own containers.
func SharedSwift(t testing.TB) *Swift {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "runbook-swift-")
		if shared.err == nil {
			shared.s, shared.err = NewSwift(shared.dir)
		}
	})
	if errors.Is(shared.err, ErrNotInstalled) {
		Unavailable(t, "swift: %v", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("swift: %v", shared.err)
	}
	return shared.s
}

// StopSharedSwift stops the Swift SharedSwift started, if any, and removes
// its directory. Call it from TestMain after m.Run.
func StopSharedSwift() {
	if shared.s != nil {
		shared.s.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// NewSwift builds rings and configuration in dir and starts the servers,
// outside of any one test. The caller stops them with Stop.
func NewSwift(dir string) (*Swift, error) { return newSwift(dir, SwiftOptions{}) }

func newSwift(dir string, o SwiftOptions) (*Swift, error) {
	if o.UpdaterInterval <= 0 {
		o.UpdaterInterval = 5
	}
	for _, bin := range []string{"swift-proxy-server", "swift-account-server", "swift-container-server", "swift-object-server", "swift-ring-builder", "memcached"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s: %w", bin, ErrNotInstalled)
		}
	}
	if _, err := os.Stat("/etc/swift/swift.conf"); err != nil {
		return nil, fmt.Errorf("/etc/swift/swift.conf: %w", ErrNotInstalled)
	}
	s := &Swift{dir: dir, opts: o, ports: map[string]int{}, procs: map[string]*exec.Cmd{}}
	var held []net.Listener // hold the ports until the servers start
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, n := range []string{"proxy", "account", "container", "object", "memcached"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		s.ports[n] = l.Addr().(*net.TCPAddr).Port
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", s.ports["proxy"])
	s.AuthURL = s.URL + "/auth/v1.0"
	s.Accounts[0] = SwiftAccount{User: "test:tester", Key: "testing", StorageURL: s.URL + "/v1/AUTH_test"}
	s.Accounts[1] = SwiftAccount{User: "test2:tester2", Key: "testing2", StorageURL: s.URL + "/v1/AUTH_test2"}
	for _, d := range []string{"etc", "srv/d1", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.buildRings(); err != nil {
		return nil, err
	}
	for _, l := range held {
		l.Close()
	}
	held = nil
	return s, s.Start()
}

func (s *Swift) writeConfig() error {
	etc := filepath.Join(s.dir, "etc")
	var b bytes.Buffer
	fmt.Fprintf(&b, `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = %d
workers = 1
user = root
swift_dir = %s
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats container_quotas bulk tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# A loaded test machine (many tests at once on two cores) makes the
# default 0.5 s connect timeout to the back ends answer 503.
conn_timeout = 5
node_timeout = 60

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
user_test2_tester2 = testing2 .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:%d

[filter:proxy-logging]
use = egg:swift#proxy_logging
`, s.ports["proxy"], etc, s.ports["memcached"])
	for _, f := range []string{"catch_errors", "gatekeeper", "healthcheck", "listing_formats", "bulk", "copy", "slo", "dlo", "container_quotas"} {
		fmt.Fprintf(&b, "\n[filter:%s]\nuse = egg:swift#%s\n", f, f)
	}
	if err := os.WriteFile(filepath.Join(etc, "proxy-server.conf"), b.Bytes(), 0o644); err != nil {
		return err
	}
	for _, n := range []string{"account", "container", "object"} {
		conf := fmt.Sprintf(`[DEFAULT]
bind_ip = 127.0.0.1
bind_port = %d
workers = 1
user = root
swift_dir = %s
devices = %s
mount_check = false
log_level = WARNING

[pipeline:main]
pipeline = %s-server

[app:%s-server]
use = egg:swift#%s

[%s-replicator]

[%s-updater]
interval = %d
`, s.ports[n], etc, filepath.Join(s.dir, "srv"), n, n, n, n, n, s.opts.UpdaterInterval)
		if err := os.WriteFile(filepath.Join(etc, n+"-server.conf"), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ringScript builds the three one-device rings in one Python process
// (swift-ring-builder's create, add and rebalance are a Python start-up
// each): arguments are the directory, then name:port for each ring.
const ringScript = `
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for arg in sys.argv[2:]:
    name, port = arg.split(':')
    b = RingBuilder(8, 1, 1)
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 100})
    b.rebalance()
    b.save('%s/%s.builder' % (etc, name))
    b.get_ring().save('%s/%s.ring.gz' % (etc, name))
`

// swiftPython is the interpreter Swift is installed for: the one in the
// shebang of swift-ring-builder (a python3 earlier in PATH may not have
// the swift module).
func swiftPython() string {
	if p, err := exec.LookPath("swift-ring-builder"); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if f := strings.Fields(strings.TrimPrefix(line, "#!")); len(f) > 0 && !strings.HasSuffix(f[0], "/env") {
				return f[0]
			}
		}
	}
	return "python3"
}

func (s *Swift) buildRings() error {
	etc := filepath.Join(s.dir, "etc")
	args := []string{"-c", ringScript, etc}
	for _, n := range []string{"account", "container", "object"} {
		args = append(args, fmt.Sprintf("%s:%d", n, s.ports[n]))
	}
	out, err := exec.Command(swiftPython(), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("build swift rings: %v: %s", err, out)
	}
	return nil
}

// Start starts the servers (again, after Stop), with the same data, and
// waits until the proxy and every backend answer.
func (s *Swift) Start() error {
	for _, n := range swiftServers {
		if err := s.StartServer(n); err != nil {
			s.Stop()
			return err
		}
	}
	return s.wait(150 * time.Second) // Python start-ups on a loaded machine
}

// StartServer starts one of the processes ("memcached", "account",
// "container", "object", "cupd" (the container updater), "proxy") if it is
// not running. It does not wait for it.
func (s *Swift) StartServer(n string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs[n] != nil {
		return nil
	}
	etc := filepath.Join(s.dir, "etc")
	var cmd *exec.Cmd
	switch n {
	case "memcached":
		cmd = exec.Command("memcached", "-l", "127.0.0.1", "-p", strconv.Itoa(s.ports[n]), "-U", "0", "-u", "memcache", "-m", "64")
		if os.Getuid() != 0 {
			cmd = exec.Command("memcached", "-l", "127.0.0.1", "-p", strconv.Itoa(s.ports[n]), "-U", "0", "-m", "64")
		}
	case "cupd":
		cmd = exec.Command("swift-container-updater", filepath.Join(etc, "container-server.conf"))
	default:
		cmd = exec.Command("swift-"+n+"-server", filepath.Join(etc, n+"-server.conf"))
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "log", n+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n, err)
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	s.procs[n] = cmd
	return nil
}

// StopServer kills one process (and its workers) and waits until its port
// is free.
func (s *Swift) StopServer(n string) {
	s.mu.Lock()
	cmd := s.procs[n]
	delete(s.procs, n)
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if p, ok := s.ports[n]; ok {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 100*time.Millisecond)
			if err != nil {
				return
			}
			c.Close()
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Stop stops every process.
func (s *Swift) Stop() {
	for i := len(swiftServers) - 1; i >= 0; i-- {
		s.StopServer(swiftServers[i])
	}
}

// WaitReady waits until the proxy answers its health check and the
// backends accept connections.
func (s *Swift) WaitReady(timeout time.Duration) error { return s.wait(timeout) }

func (s *Swift) wait(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range []string{"memcached", "account", "container", "object"} {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.ports[n]), 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("swift %s server did not start: %s", n, s.logTail(n))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(s.URL + "/healthcheck")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swift proxy did not start: %s", s.logTail("proxy"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The first authentication proves memcached and tempauth work.
	for {
		_, _, err := s.Auth(0)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swift auth: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Auth authenticates account i (0 or 1) with tempauth and returns its
// storage URL and a token.
func (s *Swift) Auth(i int) (storageURL, token string, err error) {
	req, _ := http.NewRequest("GET", s.AuthURL, nil)
	req.Header.Set("X-Auth-User", s.Accounts[i].User)
	req.Header.Set("X-Auth-Key", s.Accounts[i].Key)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", "", err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", "", fmt.Errorf("auth %s: %s", s.Accounts[i].User, resp.Status)
	}
	return resp.Header.Get("X-Storage-Url"), resp.Header.Get("X-Auth-Token"), nil
}

// ExpireTokens empties memcached, where tempauth keeps its tokens: every
// token handed out so far is then refused with 401, as an expired one.
func (s *Swift) ExpireTokens() error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.ports["memcached"]), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("flush_all\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(buf[:n]), "OK") {
		return fmt.Errorf("memcached flush_all: %q", buf[:n])
	}
	return nil
}

func (s *Swift) logTail(n string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log", n+".log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// CPU is the CPU time (user and system) each server process and its
// workers ("proxy", "object", ...) have used so far, read from /proc
// (Linux; empty elsewhere): a benchmark takes it before and after a run
// to tell how busy Swift itself was.
func (s *Swift) CPU() map[string]time.Duration {
	s.mu.Lock()
	groups := map[int]string{}
	for n, cmd := range s.procs {
		if cmd.Process != nil {
			groups[cmd.Process.Pid] = n
		}
	}
	s.mu.Unlock()
	out := map[string]time.Duration{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis: state is
		// the 3rd field of stat, process group the 5th, utime and stime
		// the 14th and 15th (clock ticks, 100 a second).
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		n, ok := groups[pgrp]
		if !ok {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[n] += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return out
}

package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
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

	"github.com/jackc/pgx/v5"
)

// PostgresURLEnv names an existing PostgreSQL server to use instead of a
// throwaway cluster. It must be a superuser URL (tests create databases).
const PostgresURLEnv = "RUNBOOK_TEST_PG_URL"

// PasswordRole is a role of the throwaway cluster that must authenticate
// with a password (scram-sha-256); every other role is trusted. Tests of
// authentication failures connect as this role with a wrong password.
const PasswordRole = "runbook_pw"

// pg is the one cluster of this test binary, started on first use.
var pg struct {
	mu       sync.Mutex // guards every field below
	started  bool
	err      error  // why the cluster could not be started
	adminURL string // superuser URL of the maintenance database
	stop     func() // stops the cluster and removes its files; nil if external
	owned    bool   // true when this binary started the cluster
	mainRun  bool   // set by RunMain: the cluster will be stopped at exit
}

// RunMain runs the tests of a package that uses Postgres and stops the
// throwaway cluster afterwards. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m)) }
func RunMain(m *testing.M) int {
	pg.mu.Lock()
	pg.mainRun = true
	pg.mu.Unlock()
	code := m.Run()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if pg.stop != nil {
		pg.stop()
		pg.stop = nil
	}
	return code
}

// PGDatabase describes a database to create for one test.
type PGDatabase struct {
	// CollateC creates the database with LC_COLLATE and LC_CTYPE 'C' from
	// template0, as Synapse requires.
	CollateC bool
	// Init is SQL (e.g. a schema) every new database starts with. It runs
	// once per test binary into a template database that later databases
	// are cloned from, which is much faster than running it each time.
	Init string
}

// templates maps (options, Init) to the name of a ready template database.
var templates struct {
	mu    sync.Mutex // guards names and serializes template creation
	names map[string]string
}

// template returns the template database holding opt.Init, creating it on
// first use.
func template(ctx context.Context, conn *pgx.Conn, admin string, opt PGDatabase) (string, error) {
	templates.mu.Lock()
	defer templates.mu.Unlock()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%v\x00%s", opt.CollateC, opt.Init)))
	key := hex.EncodeToString(sum[:8])
	if n, ok := templates.names[key]; ok {
		return n, nil
	}
	name := "tmpl_" + key + "_" + randomHex(3)
	stmt := "CREATE DATABASE " + name
	if opt.CollateC {
		stmt += " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return "", fmt.Errorf("%s: %w", stmt, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", err
	}
	_, err = c.Exec(ctx, opt.Init)
	c.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("init template database: %w", err)
	}
	if templates.names == nil {
		templates.names = map[string]string{}
	}
	templates.names[key] = name
	return name, nil
}

// Postgres creates a fresh, empty database for the calling test and returns
// a superuser URL to it. The database is dropped when the test ends.
func Postgres(t testing.TB) string { return PostgresWith(t, PGDatabase{}) }

// PostgresWith is Postgres with database options.
func PostgresWith(t testing.TB, opt PGDatabase) string {
	t.Helper()
	admin := postgresAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("postgres: connect as superuser: %v", err)
	}
	defer conn.Close(ctx)
	name := "t_" + randomHex(6)
	stmt := "CREATE DATABASE " + name
	if opt.Init != "" {
		tmpl, err := template(ctx, conn, admin, opt)
		if err != nil {
			t.Fatalf("postgres: %v", err)
		}
		stmt += " TEMPLATE " + tmpl
		var version int
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err == nil && version >= 150000 {
			// Without WAL-logging every block: faster for small databases.
			stmt += " STRATEGY FILE_COPY"
		}
	} else if opt.CollateC {
		stmt += " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("postgres: %s: %v", stmt, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("postgres: admin url: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// PostgresBadPasswordURL returns a URL to the throwaway cluster with the
// PasswordRole and a wrong password, for authentication-failure tests. It
// skips the test when an external server (RUNBOOK_TEST_PG_URL) is used.
func PostgresBadPasswordURL(t testing.TB) string {
	t.Helper()
	admin := postgresAdmin(t)
	pg.mu.Lock()
	owned := pg.owned
	pg.mu.Unlock()
	if !owned {
		t.Skip("authentication tests need the throwaway cluster, not " + PostgresURLEnv)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("postgres: admin url: %v", err)
	}
	u.User = url.UserPassword(PasswordRole, "wrong-"+randomHex(4))
	return u.String()
}

// postgresAdmin returns the superuser URL, starting the cluster on first use.
func postgresAdmin(t testing.TB) string {
	t.Helper()
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if !pg.started {
		pg.started = true
		if env := os.Getenv(PostgresURLEnv); env != "" {
			pg.adminURL = env
		} else if !pg.mainRun {
			pg.err = fmt.Errorf("testenv.Postgres needs TestMain to call testenv.RunMain (so the cluster is stopped)")
		} else {
			pg.adminURL, pg.stop, pg.err = startCluster()
			pg.owned = pg.err == nil
		}
	}
	if pg.err != nil {
		if strings.Contains(pg.err.Error(), "RunMain") {
			t.Fatal(pg.err)
		}
		Unavailable(t, "postgres: %v", pg.err)
	}
	return pg.adminURL
}

// startCluster runs initdb and pg_ctl from the newest
// /usr/lib/postgresql/*/bin as an unprivileged user (postgres refuses root)
// on a free loopback port, with its socket in the cluster's directory.
func startCluster() (adminURL string, stop func(), err error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", nil, fmt.Errorf("no /usr/lib/postgresql/*/bin/initdb (install the postgresql package)")
	}
	sort.Slice(bins, func(i, j int) bool { return pgMajor(bins[i]) < pgMajor(bins[j]) })
	bin := filepath.Dir(bins[len(bins)-1])

	// A RAM-backed directory makes database creation (a file copy) several
	// times faster; the cluster is small and removed at exit.
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "runbook-pg-")
	if err != nil && base != "" {
		dir, err = os.MkdirTemp("", "runbook-pg-")
	}
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	run := func(name string, args ...string) ([]byte, error) {
		return exec.Command(filepath.Join(bin, name), args...).CombinedOutput()
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("running as root and no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			cleanup()
			return "", nil, err
		}
		run = func(name string, args ...string) ([]byte, error) {
			all := append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)
			return exec.Command("runuser", all...).CombinedOutput()
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	removeStaleClusters(filepath.Dir(dir), run)
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync"); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	hba := "local all all trust\n" +
		"host all " + PasswordRole + " 127.0.0.1/32 scram-sha-256\n" +
		"host all all 127.0.0.1/32 trust\n" +
		"host all all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	if os.Geteuid() == 0 {
		_ = exec.Command("chown", "postgres:postgres", filepath.Join(data, "pg_hba.conf")).Run()
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freePort()
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
		out, err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "30", "-o", opts, "start")
		if err != nil {
			lastErr = fmt.Errorf("pg_ctl start: %v: %s", err, out)
			continue
		}
		stop := func() {
			_, _ = run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
			cleanup()
		}
		admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			stop()
			return "", nil, fmt.Errorf("connect to new cluster: %w", err)
		}
		_, err = conn.Exec(ctx, "CREATE ROLE "+PasswordRole+" LOGIN PASSWORD '"+randomHex(8)+"'")
		conn.Close(ctx)
		if err != nil {
			stop()
			return "", nil, fmt.Errorf("create password role: %w", err)
		}
		return admin, stop, nil
	}
	cleanup()
	return "", nil, lastErr
}

// removeStaleClusters stops and deletes the clusters of test binaries that
// died without stopping theirs (a panic, a timeout): each cluster directory
// records its owner's pid in owner.pid.
func removeStaleClusters(base string, run func(string, ...string) ([]byte, error)) {
	dirs, _ := filepath.Glob(filepath.Join(base, "runbook-pg-*"))
	for _, d := range dirs {
		if alive(filepath.Join(d, "owner.pid")) {
			continue
		}
		fi, err := os.Stat(d)
		if _, perr := os.Stat(filepath.Join(d, "owner.pid")); perr != nil && (err != nil || time.Since(fi.ModTime()) < time.Hour) {
			continue // being set up right now, or not ours
		}
		if alive(filepath.Join(d, "data", "postmaster.pid")) {
			_, _ = run("pg_ctl", "-D", filepath.Join(d, "data"), "-m", "immediate", "-w", "stop")
		}
		_ = os.RemoveAll(d)
	}
}

// alive reports whether the pid on the first line of file is a live process.
func alive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func pgMajor(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 55433
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

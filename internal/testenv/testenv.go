// Package testenv starts the real servers the tests use (PostgreSQL, a
// CouchDB-compatible server, an SSH server, ...) on loopback.
//
// Each server has its own file. A test that needs a server calls its Start
// function; when the server cannot be started the test is skipped on a
// developer machine but fails in CI (CI=true), so a missing server never
// passes silently. `make test-deps` installs every server.
package testenv

import (
	"fmt"
	"net"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where a missing server is a
// failure and not a skip.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Unavailable fails the test in CI and skips it elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (run `make test-deps` to install the test servers)"
	if InCI() || os.Getenv("RUNBOOK_REQUIRE_SERVERS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

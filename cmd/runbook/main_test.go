package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestMain keeps the tests' state keys out of the user's config directory
// (`runbook init` creates one there when there is none), and stops the
// PostgreSQL cluster the state tests start.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runbook-cli-config")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := testenv.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestInitCreatesTheStateKey: init creates the user's state key when there
// is none and names it; a second init keeps it.
func TestInitCreatesTheStateKey(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("step \"core.noop\" \"a\" {\n  with = {}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "runbook", "state.key")
	var stdout, stderr bytes.Buffer
	if err := runInit(context.Background(), &stdout, &stderr, dir, false); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(stdout.String(), "created the state key "+key) {
		t.Fatalf("key %v, %v; init said %q", fi, err, stdout.String())
	}
	first, _ := os.ReadFile(key)
	stdout.Reset()
	if err := runInit(context.Background(), &stdout, &stderr, dir, false); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(key); !bytes.Equal(first, again) || strings.Contains(stdout.String(), "created") {
		t.Fatalf("a second init changed the key; said %q", stdout.String())
	}
}

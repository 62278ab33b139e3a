package main

import (
	"os"
	"testing"
)

// TestMain keeps the tests' state keys out of the user's config directory
// (`runbook init` creates one there when there is none).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runbook-cli-config")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/pluginhost"
)

// RUNBOOK_SELF_EXE naming another program does not make the runbook binary
// run it as its builtin plugins.
func TestSelfExeIsNotHonoured(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	other := filepath.Join(dir, "other")
	write(t, other, "#!/bin/sh\necho ran > "+marker+"\n")
	if err := os.Chmod(other, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "main.hcl"), "step \"core.noop\" \"a\" {\n  with = { values = 1 }\n}\n")
	r := runbook(t, dir, []string{"RUNBOOK_SELF_EXE=" + other}, "apply", "-auto-approve", "main.hcl")
	if _, err := os.Stat(marker); err == nil {
		t.Fatalf("RUNBOOK_SELF_EXE ran %s as the builtin plugins (exit %d)", other, r.code)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "refusing to run "+other+" as the builtin plugins") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// `plugins ls` says a plugin whose binary no longer matches the lock file
// has a checksum mismatch, not that it is not locked.
func TestPluginsLsChecksumMismatch(t *testing.T) {
	dir := t.TempDir()
	pdir := filepath.Join(dir, ".runbook", "plugins")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ledgerBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "runbook-plugin-ledger"), append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, pluginhost.LockFileName), "plugin \"ledger\" {\n  sha256 = \""+ledgerSum+"\"\n}\n")
	r := runbook(t, dir, nil, "plugins", "ls")
	if !strings.Contains(r.stdout, "checksum mismatch: "+pluginhost.LockFileName+" has sha256 "+ledgerSum[:16]) || strings.Contains(r.stdout, "not locked") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

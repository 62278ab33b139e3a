package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium (or Chrome) for headless browser
// tests: $RUNBOOK_CHROMIUM, else the first found on PATH. Without one the
// test is Unavailable (it fails in CI). scripts/test-deps.d/70-chromium.sh
// installs Debian's chromium.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RUNBOOK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, "no Chromium found (chromium, chromium-browser or google-chrome on PATH, or RUNBOOK_CHROMIUM)")
	return ""
}

// Artifacts is the directory where a test saves what a person may want to
// look at afterwards (screenshots): $RUNBOOK_TEST_ARTIFACTS/<test name>
// when set (CI uploads it), else a temporary directory. The path is logged.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if root := os.Getenv("RUNBOOK_TEST_ARTIFACTS"); root != "" {
		dir = root + string(os.PathSeparator) + sanitizeName(t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("artifacts: %v", err)
		}
	}
	t.Logf("test artifacts in %s", dir)
	return dir
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

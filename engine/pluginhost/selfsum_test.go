package pluginhost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cache remembers several binaries, newest first, and forgets the
// oldest beyond selfSumCacheSize; a changed file is hashed again.
func TestSelfSumCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	var files []string
	for i := range selfSumCacheSize + 2 {
		f := filepath.Join(dir, "runbook-"+string(rune('a'+i)))
		if err := os.WriteFile(f, []byte(strings.Repeat("x", i+1)), 0o755); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for _, f := range files {
		got, err := cachedFileSHA256(f)
		want, _ := FileSHA256(f)
		if err != nil || got != want {
			t.Fatalf("%s: %s, %v; want %s", f, got, err, want)
		}
	}
	cache, _ := os.UserCacheDir()
	b, err := os.ReadFile(filepath.Join(cache, "runbook", selfSumCacheFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2*selfSumCacheSize {
		t.Fatalf("cache holds %d lines, want %d", len(lines), 2*selfSumCacheSize)
	}
	if !strings.HasPrefix(lines[0], files[len(files)-1]+"\x00") {
		t.Errorf("newest entry %q is not the last file hashed", lines[0])
	}
	for _, l := range lines {
		if strings.HasPrefix(l, files[0]+"\x00") {
			t.Errorf("the oldest file is still cached")
		}
	}
	// A cached entry answers without hashing: plant a wrong sum for the
	// newest file and see it come back.
	fake := strings.Repeat("0", 64)
	lines[1] = fake
	os.WriteFile(filepath.Join(cache, "runbook", selfSumCacheFile), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	if got, _ := cachedFileSHA256(files[len(files)-1]); got != fake {
		t.Errorf("cached sum not used: %s", got)
	}
	// Changing the file changes its identity: hashed again.
	os.WriteFile(files[len(files)-1], []byte("changed"), 0o755)
	want, _ := FileSHA256(files[len(files)-1])
	if got, _ := cachedFileSHA256(files[len(files)-1]); got != want {
		t.Errorf("changed file: %s, want %s", got, want)
	}
}

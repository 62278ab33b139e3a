package pluginhost

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// raceTime bounds a race test: 2 s by default, RUNBOOK_RACE_TIME (a Go
// duration) when set, as scripts/fuzz.sh does.
func raceTime(t *testing.T) time.Duration {
	if s := os.Getenv("RUNBOOK_RACE_TIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RUNBOOK_RACE_TIME: %v", err)
		}
		return d
	}
	return 2 * time.Second
}

// TestRacePinnedPluginSwap swaps the file at a pinned plugin's path
// between the locked program and another one, as fast as it can, while the
// plugin is launched again and again: the other program must never run
// (checking the path and then executing the path would run it). Both
// programs are scripts that only record that they ran, so that a launch
// takes milliseconds.
func TestRacePinnedPluginSwap(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	script := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho ran >> "+filepath.Join(logs, name)+"\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, evil := script("good"), script("evil")
	sum, err := FileSHA256(good)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, BinaryName("testing"))
	if err := os.Link(good, path); err != nil {
		t.Fatal(err)
	}
	ran := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(logs, name))
		return strings.Count(string(b), "ran")
	}
	cache := t.TempDir()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the swapper
		defer wg.Done()
		tmp := filepath.Join(dir, ".swap")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src := good
			if i%2 == 1 {
				src = evil
			}
			os.Remove(tmp)
			if os.Link(src, tmp) == nil {
				os.Rename(tmp, path)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	launches, refusals := 0, 0
	for deadline := time.Now().Add(raceTime(t)); time.Now().Before(deadline); launches++ {
		h := New(Options{Builtins: builtin.All(), Dirs: []string{dir}, Lock: lockOf("testing", sum), PluginCache: cache})
		_, err := h.Provider(context.Background(), "testing")
		h.Close()
		switch {
		case err == nil:
			t.Fatal("a script served as a plugin")
		case strings.Contains(err.Error(), "has changed since it was locked"):
			refusals++
		case !strings.Contains(err.Error(), "could not be started"):
			t.Fatalf("launch: %v", err)
		}
		if n := ran("evil"); n > 0 {
			t.Fatalf("the unpinned program ran %d times in %d launches", n, launches+1)
		}
	}
	if ran("good") == 0 || refusals == 0 {
		t.Fatalf("in %d launches the pinned program ran %d times and %d were refused: the race was not exercised", launches, ran("good"), refusals)
	}
	t.Logf("%d launches: the pinned program ran %d times, %d refused", launches, ran("good"), refusals)
}

// The private copy is what runs, is kept under PluginCache/<sha256> and
// reused; a copy tampered with in the cache is replaced.
func TestPinnedCopy(t *testing.T) {
	dir, sum := installExternal(t)
	cache := t.TempDir()
	start := func() {
		t.Helper()
		h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum), PluginCache: cache})
		provider(t, h, "testing")
		h.mu.Lock()
		p := h.plugins["testing"].provider.(*proc)
		h.mu.Unlock()
		if want := filepath.Join(cache, sum, BinaryName("testing")); p.path != want {
			t.Fatalf("runs %s, want %s", p.path, want)
		}
		h.Close()
	}
	start()
	copyPath := filepath.Join(cache, sum, BinaryName("testing"))
	st1, err := os.Stat(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Mode().Perm() != 0o700 {
		t.Errorf("copy mode %v, want 0700", st1.Mode().Perm())
	}
	start()
	st2, _ := os.Stat(copyPath)
	if !os.SameFile(st1, st2) {
		t.Errorf("the cached copy was not reused")
	}
	os.WriteFile(copyPath, []byte("#!/bin/sh\nexit 1\n"), 0o700)
	start()
	if got, _ := FileSHA256(copyPath); got != sum {
		t.Errorf("tampered copy kept: sha256 %s", got)
	}
}

// Plugins that another user could replace are refused.
func TestPlacementRefusals(t *testing.T) {
	tests := []struct {
		name          string
		dirMode, mode os.FileMode
		want          string
	}{
		{"world-writable dir", 0o777, 0o755, "its directory"},
		{"group-writable dir", 0o775, 0o755, "its directory"},
		{"sticky dir", 0o1777, 0o755, "its directory"},
		{"world-writable file", 0o755, 0o757, "the plugin"},
		{"group-writable file", 0o755, 0o775, "the plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, sum := installExternal(t)
			// A copy, so that the shared test binary keeps its mode.
			dst := filepath.Join(dir, BinaryName("testing"))
			b, _ := os.ReadFile(dst)
			os.Remove(dst)
			if err := os.WriteFile(dst, b, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dst, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum), PluginCache: t.TempDir()})
			_, err := h.Provider(context.Background(), "testing")
			if err == nil {
				t.Fatal("plugin started")
			}
			if !strings.Contains(err.Error(), "refusing to run it: "+tt.want) || !strings.Contains(err.Error(), "writable by its group or by other users") {
				t.Errorf("error = %v", err)
			}
			if h := sdk.Classify(err).Hint; !strings.Contains(h, "chmod go-w") {
				t.Errorf("hint = %q", h)
			}
		})
	}
}

// When the cache directory is not private, the copy goes to a temporary
// directory removed when the plugin stops.
func TestPinnedCopyNotInSharedCache(t *testing.T) {
	dir, sum := installExternal(t)
	cache := t.TempDir()
	if err := os.Chmod(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, Options{Dirs: []string{dir}, Lock: lockOf("testing", sum), PluginCache: cache})
	provider(t, h, "testing")
	h.mu.Lock()
	exe := h.plugins["testing"].provider.(*proc).path
	h.mu.Unlock()
	if strings.HasPrefix(exe, cache) {
		t.Fatalf("runs %s from the shared cache", exe)
	}
	h.Close()
	if _, err := os.Stat(filepath.Dir(exe)); !os.IsNotExist(err) {
		t.Errorf("temporary copy left behind: %v", err)
	}
}

package nextcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// rssBound is the memory goal for the process running an action:
// flat, under 100 MB, whatever the tree's size.
const rssBound = 100 << 20

// TestBenchChild is the process benchRSS starts: it runs one action of the
// plugin and exits. Run alone it does nothing.
func TestBenchChild(t *testing.T) {
	action := os.Getenv("RUNBOOK_BENCH_CHILD")
	if action == "" {
		t.Skip("the process of the nextcloud benchmarks' memory figures")
	}
	extra := map[string]any{}
	if err := json.Unmarshal([]byte(os.Getenv("RUNBOOK_BENCH_CHILD_IN")), &extra); err != nil {
		t.Fatal(err)
	}
	in := connIn(os.Getenv("RUNBOOK_BENCH_CHILD_URL"), extra)
	var a sdk.Action
	switch action {
	case "inventory":
		a = inventoryAction{}
	case "copy":
		a = copyAction{}
	default:
		t.Fatalf("action %q", action)
	}
	if _, err := a.Apply(context.Background(), &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "bench-child/" + action + "/1"}, sdk.NopEvents{}); err != nil {
		t.Fatal(err)
	}
}

// benchRSS runs an action in a process of its own (this test binary) and
// prints its wall time, CPU time and peak RSS (the kernel's ru_maxrss:
// everything resident, not only the Go heap); the RSS must stay under
// rssBound.
func benchRSS(t *testing.T, what, action string, w *testenv.WebDAV, extra map[string]any) {
	t.Helper()
	b, _ := json.Marshal(extra)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RUNBOOK_BENCH_CHILD="+action, "RUNBOOK_BENCH_CHILD_URL="+w.URL, "RUNBOOK_BENCH_CHILD_IN="+string(b))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	dt := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	rss := maxRSS(cmd.ProcessState)
	u, s := childCPU(cmd.ProcessState)
	fmt.Printf("  %s in its own process: %.2f s, CPU user %.2f s system %.2f s, peak RSS %d MB (bound %d MB)\n",
		what, dt.Seconds(), u.Seconds(), s.Seconds(), rss>>20, rssBound>>20)
	if rss > rssBound {
		t.Errorf("%s: peak RSS %d MB, over %d MB", what, rss>>20, rssBound>>20)
	}
}

// cachedTree returns a tree of n one-byte files in folders of 1,000,
// built once in the temporary directory and kept for the next runs
// (RUNBOOK_BENCH_CACHE names another place), and how long building it
// took (0 when cached).
func cachedTree(t *testing.T, n int) (string, time.Duration) {
	base := os.Getenv("RUNBOOK_BENCH_CACHE")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, fmt.Sprintf("runbook-bench-nextcloud-tree-%d", n))
	done := dir + ".complete"
	if _, err := os.Stat(done); err == nil {
		return dir, 0
	}
	start := time.Now()
	_ = os.RemoveAll(dir)
	tmp := dir + ".building"
	_ = os.RemoveAll(tmp)
	for i := 0; i < n; i++ {
		d := filepath.Join(tmp, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file-%06d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, time.Since(start)
}

// lend moves dir to at for the test (a rename: instant on one file
// system) and back when it ends.
func lend(t *testing.T, dir, at string) {
	if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, at); err != nil {
		t.Fatalf("move the cached tree into the server (one file system needed; set RUNBOOK_BENCH_CACHE): %v", err)
	}
	t.Cleanup(func() { _ = os.Rename(at, dir) })
}

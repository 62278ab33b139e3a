package nextcloud

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// TestCopyBench times nextcloud.copy against rclone copy (vendor
// nextcloud) and parallel curl, from Apache mod_dav to a local directory:
// many small files, then one large file. Run by scripts/bench.d/nextcloud.sh
// (RUNBOOK_BENCH_NEXTCLOUD=1).
//
//	RUNBOOK_BENCH_SMALL  number of 10 KB files (2000)
//	RUNBOOK_BENCH_LARGE  size of the large file in MB (1024)
//	RUNBOOK_BENCH_RCLONE extra rclone binaries to compare, ":"-separated
//	RUNBOOK_BENCH_OURS_ONLY  skip rclone (and keep curl)
//	RUNBOOK_BENCH_CPUPROFILE write nextcloud.copy's CPU profiles to this path + ".small"/".large"
func TestCopyBench(t *testing.T) {
	if os.Getenv("RUNBOOK_BENCH_NEXTCLOUD") == "" {
		t.Skip("set RUNBOOK_BENCH_NEXTCLOUD=1 (make bench)")
	}
	small := envInt("RUNBOOK_BENCH_SMALL", 2000)
	largeMB := envInt("RUNBOOK_BENCH_LARGE", 1024)
	ap := testenv.StartApacheDAV(t, testUser, canary)
	genSmall(t, filepath.Join(ap.Root, "small"), small)
	genLarge(t, filepath.Join(ap.Root, "large", "big.bin"), int64(largeMB)<<20)
	ap.Own(t)
	settle()
	out := t.TempDir()
	rclones := []string{"rclone"}
	if os.Getenv("RUNBOOK_BENCH_OURS_ONLY") != "" {
		rclones = nil
	}
	if x := os.Getenv("RUNBOOK_BENCH_RCLONE"); x != "" {
		rclones = append(rclones, strings.Split(x, ":")...)
	}
	for _, set := range []struct {
		name, dir string
		files     int
	}{{fmt.Sprintf("%d x 10 KB", small), "small", small}, {fmt.Sprintf("1 x %d MB", largeMB), "large", 1}} {
		fmt.Printf("nextcloud bench: %s, Apache mod_dav -> local dir\n", set.name)
		settle()
		dt, peak := timeCopy(t, ap, set.dir, filepath.Join(out, "nc-"+set.dir))
		fmt.Printf("  nextcloud.copy   %7.2f s  (peak Go heap %d MB)\n", dt.Seconds(), peak>>20)
		benchRSS(t, "nextcloud.copy of "+set.name, "copy", ap, map[string]any{"login": testUser, "user_id": testUser, "path": set.dir,
			"target_dir": filepath.Join(out, "rss-"+set.dir), "state_dir": t.TempDir()})
		best := time.Duration(0)
		for _, rc := range rclones {
			if _, err := exec.LookPath(rc); err != nil {
				fmt.Printf("  %s: not installed\n", rc)
				continue
			}
			settle()
			d := timeRclone(t, rc, ap, set.dir, filepath.Join(out, "rc-"+strconv.Itoa(len(rc))+set.dir))
			fmt.Printf("  %-16s %7.2f s  (%s)  ratio rclone/nextcloud.copy = %.1fx\n", filepath.Base(rc), d.Seconds(), rcloneVersion(rc), d.Seconds()/dt.Seconds())
			if best == 0 || d < best {
				best = d
			}
		}
		settle()
		if c := timeCurl(t, ap, set.dir, filepath.Join(out, "curl-"+set.dir)); c > 0 {
			fmt.Printf("  curl x8          %7.2f s  ratio curl/nextcloud.copy = %.2fx\n", c.Seconds(), c.Seconds()/dt.Seconds())
		}
		// To another WebDAV server (a second Apache mod_dav).
		fmt.Printf("nextcloud bench: %s, Apache mod_dav -> Apache mod_dav\n", set.name)
		dst := testenv.StartApacheDAV(t, testUser, canary)
		dt = timeCopyDAV(t, ap, dst, set.dir)
		fmt.Printf("  nextcloud.copy   %7.2f s\n", dt.Seconds())
		for _, rc := range rclones {
			if _, err := exec.LookPath(rc); err != nil {
				continue
			}
			d := timeRcloneTo(t, rc, ap, set.dir, "dst:rc-"+strconv.Itoa(len(rc))+set.dir, dst)
			fmt.Printf("  %-16s %7.2f s  ratio rclone/nextcloud.copy = %.1fx\n", filepath.Base(rc), d.Seconds(), d.Seconds()/dt.Seconds())
		}
		_ = os.RemoveAll(out)
		_ = os.MkdirAll(out, 0o755)
	}
}

// TestInventoryBench walks RUNBOOK_BENCH_INVENTORY files (in folders of
// 1,000; the tree is built once and cached) on Apache mod_dav and reports
// the time and the peak Go heap, then walks it again in a process of its
// own whose peak RSS must stay under 100 MB: the manifest streams to its
// file, so memory stays flat whatever the tree.
func TestInventoryBench(t *testing.T) {
	n := envInt("RUNBOOK_BENCH_INVENTORY", 0)
	if n == 0 {
		t.Skip("set RUNBOOK_BENCH_INVENTORY=100000 (make bench)")
	}
	tree, built := cachedTree(t, n)
	ap := testenv.StartApacheDAV(t, testUser, canary)
	// Read only: the server need not own the files.
	lend(t, tree, filepath.Join(ap.Root, "tree"))
	if built > 0 {
		fmt.Printf("nextcloud bench: built the %d-file tree in %.1f s (kept in %s for the next runs)\n", n, built.Seconds(), tree)
	}
	man := filepath.Join(t.TempDir(), "manifest.jsonl")
	in := connIn(ap.URL, map[string]any{"login": testUser, "user_id": testUser, "manifest": man})
	var res *sdk.Result
	var err error
	dt, peak := measure(func() {
		res, err = inventoryAction{}.Apply(context.Background(), &sdk.ApplyRequest{Inputs: in}, sdk.NopEvents{})
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(man)
	fmt.Printf("nextcloud bench: inventory of %d files in %d folders: %.2f s, peak Go heap %d MB, manifest %d MB\n",
		outInt(t, res, "files"), outInt(t, res, "folders"), dt.Seconds(), peak>>20, st.Size()>>20)
	if got := outInt(t, res, "files"); got != int64(n) {
		t.Errorf("inventory found %d files, want %d", got, n)
	}
	benchRSS(t, fmt.Sprintf("inventory of %d files", n), "inventory", ap,
		map[string]any{"login": testUser, "user_id": testUser, "manifest": filepath.Join(t.TempDir(), "manifest.jsonl")})
}

// settle writes dirty pages back before a timed run, so that no run pays
// for the writes of the one before (the generated 1 GB file included).
func settle() { _ = exec.Command("sync").Run() }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func genSmall(t *testing.T, dir string, n int) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d.bin", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func genLarge(t *testing.T, path string, size int64) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for j := 0; j < len(buf); j += 8 {
			v := r.Uint64()
			for k := 0; k < 8; k++ {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		if _, err := w.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func timeCopy(t *testing.T, ap *testenv.WebDAV, dir, dst string) (time.Duration, uint64) {
	u0, s0 := cpuTimes()
	defer func() {
		u1, s1 := cpuTimes()
		fmt.Printf("  (nextcloud.copy CPU: user %.2f s, system %.2f s)\n", (u1 - u0).Seconds(), (s1 - s0).Seconds())
	}()
	in := connIn(ap.URL, map[string]any{"login": testUser, "user_id": testUser, "path": dir, "target_dir": dst, "state_dir": t.TempDir()})
	var err error
	if p := os.Getenv("RUNBOOK_BENCH_CPUPROFILE"); p != "" {
		f, perr := os.Create(p + "." + dir)
		if perr != nil {
			t.Fatal(perr)
		}
		defer f.Close()
		if perr := pprof.StartCPUProfile(f); perr != nil {
			t.Fatal(perr)
		}
		defer pprof.StopCPUProfile()
	}
	dt, peak := measure(func() {
		_, err = copyAction{}.Apply(context.Background(), &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "bench/" + dir + "/1"}, sdk.NopEvents{})
	})
	if err != nil {
		t.Fatal(err)
	}
	return dt, peak
}

// measure runs f and returns how long it took and the peak Go heap in use
// meanwhile (sampled every 20 ms).
func measure(f func()) (time.Duration, uint64) {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	f()
	dt := time.Since(start)
	close(stop)
	wg.Wait()
	return dt, peak.Load()
}

func timeCopyDAV(t *testing.T, src, dst *testenv.WebDAV, dir string) time.Duration {
	in := connIn(src.URL, map[string]any{"login": testUser, "user_id": testUser, "path": dir, "state_dir": t.TempDir(),
		"target_url": dst.URL, "target_login": dst.User, "target_password": dst.Password, "target_user_id": dst.User, "target_path": "nc-" + dir})
	start := time.Now()
	if _, err := (copyAction{}).Apply(context.Background(), &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "bench-dav/" + dir + "/1"}, sdk.NopEvents{}); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// rcloneEnv configures the remote NAME for a WebDAV server of a vendor
// ("nextcloud" for the source; "other" for a plain Apache target: rclone
// 1.76 with vendor nextcloud asks the target for checksums after each
// upload, which mod_dav answers 405).
func rcloneEnv(t *testing.T, bin, name, vendor string, w *testenv.WebDAV) []string {
	obscured, err := exec.Command(bin, "obscure", w.Password).Output()
	if err != nil {
		t.Fatal(err)
	}
	p := "RCLONE_CONFIG_" + name + "_"
	return []string{p + "TYPE=webdav", p + "URL=" + w.URL + w.DAVPath(), p + "VENDOR=" + vendor, p + "USER=" + w.User,
		p + "PASS=" + strings.TrimSpace(string(obscured))}
}

func timeRcloneTo(t *testing.T, bin string, ap *testenv.WebDAV, dir, dst string, to *testenv.WebDAV) time.Duration {
	cmd := exec.Command(bin, "copy", "nc:"+dir, dst)
	cmd.Env = append(append(append(os.Environ(), "RCLONE_CONFIG=/dev/null"), rcloneEnv(t, bin, "NC", "nextcloud", ap)...), rcloneEnv(t, bin, "DST", "other", to)...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rclone: %v\n%s", err, out)
	}
	return time.Since(start)
}

func timeRclone(t *testing.T, bin string, ap *testenv.WebDAV, dir, dst string) time.Duration {
	cmd := exec.Command(bin, "copy", "nc:"+dir, dst)
	cmd.Env = append(append(os.Environ(), "RCLONE_CONFIG=/dev/null"), rcloneEnv(t, bin, "NC", "nextcloud", ap)...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rclone: %v\n%s", err, out)
	}
	return time.Since(start)
}

func rcloneVersion(bin string) string {
	out, _ := exec.Command(bin, "version").Output()
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// timeCurl fetches the files with 8 curl processes, each with many URLs
// on one keep-alive connection.
func timeCurl(t *testing.T, ap *testenv.WebDAV, dir, dst string) time.Duration {
	if _, err := exec.LookPath("curl"); err != nil {
		return 0
	}
	src := filepath.Join(ap.Root, dir)
	ents, _ := os.ReadDir(src)
	_ = os.MkdirAll(dst, 0o755)
	const procs = 8
	cfgs := make([]strings.Builder, procs)
	for i, e := range ents {
		fmt.Fprintf(&cfgs[i%procs], "url = \"%s%s/%s/%s\"\noutput = \"%s\"\n", ap.URL, ap.DAVPath(), dir, e.Name(), filepath.Join(dst, e.Name()))
	}
	var cmds []*exec.Cmd
	for i := range cfgs {
		if cfgs[i].Len() == 0 {
			continue
		}
		p := filepath.Join(t.TempDir(), "curl.cfg")
		if err := os.WriteFile(p, []byte(cfgs[i].String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, exec.Command("curl", "-sSf", "-u", ap.User+":"+ap.Password, "-K", p))
	}
	start := time.Now()
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("curl: %v", err)
		}
	}
	return time.Since(start)
}

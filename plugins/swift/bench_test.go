package swift

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// BenchmarkCopyVsTools times swift.copy against rclone and the swift CLI
// on the same all-in-one Swift, side by side: 2,000 objects of 10 KB and
// one of 200 MB, Swift → local directory and Swift → Swift (rclone only;
// the swift CLI has no cross-account copy). Run by scripts/bench.d/hubic.sh
// with -benchtime 1x; each tool runs RUNBOOK_SWIFT_BENCH_ROUNDS times (default
// 2), alternating, and the best time counts; RUNBOOK_SWIFT_BENCH_SETS
// ("small,large" by default) picks the sets.
func BenchmarkCopyVsTools(b *testing.B) {
	s := testenv.StartSwift(b)
	ctx := context.Background()
	c := &swift.Connection{UserName: s.Accounts[0].User, ApiKey: s.Accounts[0].Key, AuthUrl: s.AuthURL, AuthVersion: 1}
	if err := c.Authenticate(ctx); err != nil {
		b.Fatal(err)
	}
	for _, cont := range []string{"small", "large"} {
		if err := c.ContainerCreate(ctx, cont, nil); err != nil {
			b.Fatal(err)
		}
	}
	names := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range names {
				body := bytes.Repeat([]byte{byte(i)}, 10_000)
				if _, err := c.ObjectPut(ctx, "small", fmt.Sprintf("dir%02d/obj-%05d", i%20, i), bytes.NewReader(body), true, "", "application/octet-stream", nil); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		names <- i
	}
	close(names)
	wg.Wait()
	big := make([]byte, 200<<20)
	_, _ = rand.Read(big)
	if _, err := c.ObjectPut(ctx, "large", "big.bin", bytes.NewReader(big), true, "", "application/octet-stream", nil); err != nil {
		b.Fatal(err)
	}
	big = nil
	rounds := 2
	if v := os.Getenv("RUNBOOK_SWIFT_BENCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	p := sdk.Local(New())
	auth := func(i int, prefix string) map[string]any {
		return map[string]any{prefix + "auth_url": s.AuthURL, prefix + "user": s.Accounts[i].User, prefix + "key": s.Accounts[i].Key}
	}
	dst := &swift.Connection{UserName: s.Accounts[1].User, ApiKey: s.Accounts[1].Key, AuthUrl: s.AuthURL, AuthVersion: 1}
	clearTarget := func(cont string) {
		names, _ := dst.ObjectNamesAll(ctx, cont, nil)
		for len(names) > 0 {
			n := min(len(names), 10000)
			_, _ = dst.BulkDelete(ctx, cont, names[:n])
			names = names[n:]
		}
	}
	tools := []struct {
		name    string
		toSwift bool
		run     func(cont, dir string) error
	}{
		{"swift.copy", false, func(cont, dir string) error {
			in := auth(0, "source_")
			in["containers"], in["target_dir"] = []string{cont}, dir
			_, err := p.Apply(ctx, "copy", &sdk.ApplyRequest{Inputs: objIn(in)}, sdk.NopEvents{})
			return err
		}},
		{"rclone --transfers 8", false, func(cont, dir string) error {
			return run("rclone", "copy", ":swift:"+cont, dir, "--transfers", "8", "--checkers", "16", "--swift-auth", s.AuthURL,
				"--swift-user", s.Accounts[0].User, "--swift-key", s.Accounts[0].Key, "--config", "/dev/null")
		}},
		{"rclone", false, func(cont, dir string) error {
			return run("rclone", "copy", ":swift:"+cont, dir, "--swift-auth", s.AuthURL,
				"--swift-user", s.Accounts[0].User, "--swift-key", s.Accounts[0].Key, "--config", "/dev/null")
		}},
		{"swift CLI", false, func(cont, dir string) error {
			return run("swift", "-A", s.AuthURL, "-U", s.Accounts[0].User, "-K", s.Accounts[0].Key, "-q", "download", cont, "-D", dir)
		}},
		{"swift.copy → Swift", true, func(cont, _ string) error {
			in := auth(0, "source_")
			for k, v := range auth(1, "target_") {
				in[k] = v
			}
			in["containers"] = []string{cont}
			_, err := p.Apply(ctx, "copy", &sdk.ApplyRequest{Inputs: objIn(in)}, sdk.NopEvents{})
			return err
		}},
		{"rclone --transfers 8 → Swift", true, func(cont, _ string) error {
			conn := func(i int) string {
				return fmt.Sprintf(":swift,auth='%s',user='%s',key='%s':%s", s.AuthURL, s.Accounts[i].User, s.Accounts[i].Key, cont)
			}
			return run("rclone", "copy", conn(0), conn(1), "--transfers", "8", "--checkers", "16", "--config", "/dev/null")
		}},
	}
	best := map[string]time.Duration{}
	sets := []string{"small", "large"}
	if v := os.Getenv("RUNBOOK_SWIFT_BENCH_SETS"); v != "" {
		sets = strings.Split(v, ",")
	}
	for _, cont := range sets {
		for r := 0; r < rounds; r++ {
			for _, tool := range tools {
				if strings.HasPrefix(tool.name, "rclone") || tool.name == "swift CLI" {
					if _, err := exec.LookPath(strings.Fields(tool.name)[0]); err != nil {
						continue
					}
				}
				dir := filepath.Join(b.TempDir(), "out")
				_ = os.MkdirAll(dir, 0o755)
				if tool.toSwift {
					clearTarget(cont)
				}
				start := time.Now()
				if err := tool.run(cont, dir); err != nil {
					b.Fatalf("%s %s: %v", tool.name, cont, err)
				}
				d := time.Since(start)
				fmt.Printf("round %d %-30s %-6s %8.2fs\n", r+1, tool.name, cont, d.Seconds())
				key := tool.name + "|" + cont
				if best[key] == 0 || d < best[key] {
					best[key] = d
				}
				_ = os.RemoveAll(dir)
			}
		}
	}
	var keys []string
	for k := range best {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, cont, _ := strings.Cut(k, "|")
		line := fmt.Sprintf("best %-30s %-6s %8.2fs", name, cont, best[k].Seconds())
		if name == "swift.copy" || name == "swift.copy → Swift" {
			for _, other := range []string{"rclone", "rclone --transfers 8", "swift CLI", "rclone --transfers 8 → Swift"} {
				if o := best[other+"|"+cont]; o > 0 && strings.HasSuffix(other, "→ Swift") == strings.HasSuffix(name, "→ Swift") {
					line += fmt.Sprintf("  %.2f× %s", o.Seconds()/best[k].Seconds(), other)
				}
			}
		}
		fmt.Println(line)
	}
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

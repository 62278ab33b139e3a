package whawty

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestSyncBench100k compares whawty.sync with `rsync -rlpt --delete -c` on
// a store of 100,000 users with 1% of the files changed, locally and over
// ssh (the master behind a private sshd on loopback). Over ssh it also
// times whawty.sync reading the master through SFTP alone (no tar
// snapshot), the transport's fallback. It runs only with
// RUNBOOK_BENCH_WHAWTY=1 (scripts/bench.d/whawty.sh).
//
// Every round puts the slaves back in their state before the sync (the
// changed files get their old content and mtime) and times the syncs,
// alternating which tool goes first. Settings:
//
//	RUNBOOK_BENCH_USERS    store size (100000)
//	RUNBOOK_BENCH_ROUNDS   rounds (3)
//	RUNBOOK_BENCH_DIR      keep the stores there and reuse them in later runs
//	RUNBOOK_BENCH_PROFILE  write CPU profiles of whawty.sync there
func TestSyncBench100k(t *testing.T) {
	if os.Getenv("RUNBOOK_BENCH_WHAWTY") == "" {
		t.Skip("set RUNBOOK_BENCH_WHAWTY=1 to run the sync benchmark")
	}
	users := envInt("RUNBOOK_BENCH_USERS", 100000)
	rounds := envInt("RUNBOOK_BENCH_ROUNDS", 3)
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("rsync not installed")
	}
	dir := os.Getenv("RUNBOOK_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, strconv.Itoa(users))
	}
	fx := benchFixture(t, dir, users)
	sshd := testenv.StartSSHD(t)

	runRsync := func(args ...string) {
		if out, err := exec.Command(rsync, args...).CombinedOutput(); err != nil {
			t.Fatalf("rsync: %v %s", err, out)
		}
	}
	profile := os.Getenv("RUNBOOK_BENCH_PROFILE")
	// cpu is the CPU time (user+system) of this process and its waited-for
	// children: whawty.sync runs in the test process, rsync as children.
	cpu := func() time.Duration {
		var self, kids syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
		d := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
		return d(self.Utime) + d(self.Stime) + d(kids.Utime) + d(kids.Stime)
	}
	cpuUsed := map[string]time.Duration{}
	timeIt := func(name string, round int, f func()) time.Duration {
		fx.reset(t, name)
		// Start with no dirty data in the page cache: the resets just wrote.
		_ = exec.Command("sync").Run()
		if profile != "" && name[:4] == "ours" && round >= 0 {
			pf, err := os.Create(filepath.Join(profile, fmt.Sprintf("%s-%d.pprof", name, round)))
			if err != nil {
				t.Fatal(err)
			}
			_ = pprof.StartCPUProfile(pf)
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
		c0, start := cpu(), time.Now()
		f()
		d := time.Since(start)
		cpuUsed[name] = cpu() - c0
		return d
	}
	runs := map[string]func(){
		"ours-local": func() {
			res, _ := mustApply(t, "sync", map[string]any{"source": fx.master, "destination": fx.slave("ours-local")})
			if got := outNum(t, res, "updated"); got != int64(len(fx.changed)) {
				t.Fatalf("updated = %d, want %d", got, len(fx.changed))
			}
		},
		"rsync-local": func() { runRsync("-rlpt", "--delete", "-c", fx.master+"/", fx.slave("rsync-local")+"/") },
		"ours-ssh": func() {
			res, _ := mustApply(t, "sync", map[string]any{"source": sshd.URL(fx.master), "destination": fx.slave("ours-ssh"),
				"known_hosts": sshd.KnownHosts, "identity_file": sshd.IdentityFile})
			if got := outNum(t, res, "updated"); got != int64(len(fx.changed)) {
				t.Fatalf("updated = %d, want %d", got, len(fx.changed))
			}
		},
		"sftp-ssh": func() {
			defer func(n int64) { snapshotMinDirSize = n }(snapshotMinDirSize)
			snapshotMinDirSize = 1 << 62 // never worth a snapshot: SFTP only
			res, _ := mustApply(t, "sync", map[string]any{"source": sshd.URL(fx.master), "destination": fx.slave("sftp-ssh"),
				"known_hosts": sshd.KnownHosts, "identity_file": sshd.IdentityFile})
			if got := outNum(t, res, "updated"); got != int64(len(fx.changed)) {
				t.Fatalf("updated = %d, want %d", got, len(fx.changed))
			}
		},
		"rsync-ssh": func() {
			e := fmt.Sprintf("ssh -i %s -p %d -o UserKnownHostsFile=%s -o BatchMode=yes", sshd.IdentityFile, sshd.Port, sshd.KnownHosts)
			runRsync("-rlpt", "--delete", "-c", "-e", e, fmt.Sprintf("%s@%s:%s/", sshd.User, sshd.Host, fx.master), fx.slave("rsync-ssh")+"/")
		},
	}
	// One untimed run of each first: the first sync in a fresh process
	// pays for growing the heap, and caches settle.
	for _, name := range contenders {
		timeIt(name, -1, runs[name])
	}
	times := map[string][]float64{}
	ratios := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, mode := range []string{"local", "ssh"} {
			order := []string{"ours-" + mode, "rsync-" + mode}
			if mode == "ssh" {
				order = append(order, "sftp-ssh")
			}
			if r%2 == 1 {
				slices.Reverse(order)
			}
			got := map[string]float64{}
			for _, name := range order {
				got[name] = timeIt(name, r, runs[name]).Seconds()
				times[name] = append(times[name], got[name])
			}
			ratio := got["ours-"+mode] / got["rsync-"+mode]
			ratios[mode] = append(ratios[mode], ratio)
			fmt.Printf("  round %d %-5s whawty.sync %5.2fs  rsync -c %5.2fs  ratio %.2f   (CPU here: whawty.sync %.2fs, rsync %.2fs)\n",
				r+1, mode+":", got["ours-"+mode], got["rsync-"+mode], ratio, cpuUsed["ours-"+mode].Seconds(), cpuUsed["rsync-"+mode].Seconds())
			if mode == "ssh" {
				ratios["sftp"] = append(ratios["sftp"], got["sftp-ssh"]/got["rsync-ssh"])
				fmt.Printf("  round %d sftp: whawty.sync over SFTP alone %5.2fs  ratio to rsync -c %.2f   (CPU here: %.2fs)\n",
					r+1, got["sftp-ssh"], got["sftp-ssh"]/got["rsync-ssh"], cpuUsed["sftp-ssh"].Seconds())
			}
		}
	}
	fmt.Printf("whawty sync bench: %d users, %d changed, %d round(s) (ratio = whawty.sync / rsync -c; < 1 is faster)\n", users, len(fx.changed), rounds)
	for _, mode := range []string{"local", "ssh"} {
		o, rs := stats(times["ours-"+mode]), stats(times["rsync-"+mode])
		fmt.Printf("  %-6s whawty.sync median %.2fs (best %.2f, spread %.2f-%.2f), rsync -c median %.2fs (best %.2f, spread %.2f-%.2f), same-round ratio median %.2f (best %.2f, worst %.2f)\n",
			mode+":", o.median, o.min, o.min, o.max, rs.median, rs.min, rs.min, rs.max,
			stats(ratios[mode]).median, stats(ratios[mode]).min, stats(ratios[mode]).max)
	}
	sf := stats(times["sftp-ssh"])
	fmt.Printf("  sftp:  whawty.sync over SFTP alone median %.2fs (best %.2f, spread %.2f-%.2f), same-round ratio to rsync -c median %.2f\n",
		sf.median, sf.min, sf.min, sf.max, stats(ratios["sftp"]).median)
}

// contenders are the syncs the bench times, each into its own slave.
var contenders = []string{"ours-local", "rsync-local", "ours-ssh", "rsync-ssh", "sftp-ssh"}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type benchStats struct{ min, median, max float64 }

func stats(v []float64) benchStats {
	s := slices.Clone(v)
	slices.Sort(s)
	return benchStats{s[0], s[len(s)/2], s[len(s)-1]}
}

// syncBenchFixture is a master store, the old content of its changed files
// and one slave per contender.
type syncBenchFixture struct {
	dir, master string
	changed     map[string][]byte // name -> content before the change
	oldTime     time.Time
}

func (f *syncBenchFixture) slave(name string) string { return filepath.Join(f.dir, name) }

// reset puts slave name back in its state before a sync: identical to the
// master except the changed files, which hold their old content.
func (f *syncBenchFixture) reset(t *testing.T, name string) {
	t.Helper()
	d := f.slave(name)
	for n, b := range f.changed {
		p := filepath.Join(d, n)
		if err := os.WriteFile(p+".reset", b, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p+".reset", f.oldTime, f.oldTime)
		if err := os.Rename(p+".reset", p); err != nil {
			t.Fatal(err)
		}
	}
}

// benchFixture builds the stores in dir, or reuses the ones a previous run
// left there.
func benchFixture(t *testing.T, dir string, users int) *syncBenchFixture {
	t.Helper()
	fx := &syncBenchFixture{dir: dir, master: filepath.Join(dir, "master"), changed: map[string][]byte{},
		oldTime: time.Unix(1700000000, 0)}
	names := make([]string, 0, users)
	names = append(names, "root.admin")
	for i := 0; i < users-1; i++ {
		names = append(names, fmt.Sprintf("user%06d.user", i))
	}
	// 1% of the users changed their password: same size, new content.
	var changed []string
	for i := 0; i < users/100; i++ {
		changed = append(changed, fmt.Sprintf("user%06d.user", i*97%(users-1)))
	}
	origDir := filepath.Join(dir, "orig") // old content of the changed files
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		for _, n := range changed {
			b, err := os.ReadFile(filepath.Join(origDir, n))
			if err != nil {
				t.Fatal(err)
			}
			fx.changed[n] = b
		}
		// A slave for a contender added since: the master's copy, which
		// reset turns into the state before the sync.
		for _, s := range contenders {
			if _, err := os.Stat(fx.slave(s)); err != nil {
				if out, err := exec.Command("cp", "-a", fx.master, fx.slave(s)).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
			}
		}
		return fx
	}
	_ = os.RemoveAll(dir)
	line := func() []byte {
		salt, hash := make([]byte, 16), make([]byte, 32)
		_, _ = rand.Read(salt)
		_, _ = rand.Read(hash)
		return fmt.Appendf(nil, "argon2id:1700000000:2:%s:%s\n", b64url.EncodeToString(salt), b64url.EncodeToString(hash))
	}
	for _, d := range []string{filepath.Join(fx.master, ".tmp"), origDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(fx.master, 0o700)
	for _, n := range names {
		p := filepath.Join(fx.master, n)
		if err := os.WriteFile(p, line(), 0o600); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(p, fx.oldTime, fx.oldTime)
	}
	for _, s := range contenders {
		if out, err := exec.Command("cp", "-a", fx.master, fx.slave(s)).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	for _, n := range changed {
		p := filepath.Join(fx.master, n)
		old, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fx.changed[n] = old
		if err := os.WriteFile(filepath.Join(origDir, n), old, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, line(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return fx
}

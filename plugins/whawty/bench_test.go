package whawty

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestSyncBench100k compares whawty.sync with `rsync -rlpt --delete -c` on
// a store of 100,000 users with 1% of the files changed, locally and over
// ssh. It runs only with RUNBOOK_BENCH_WHAWTY=1 (scripts/bench.d/whawty.sh).
func TestSyncBench100k(t *testing.T) {
	if os.Getenv("RUNBOOK_BENCH_WHAWTY") == "" {
		t.Skip("set RUNBOOK_BENCH_WHAWTY=1 to run the sync benchmark")
	}
	users := 100000
	if n, err := strconv.Atoi(os.Getenv("RUNBOOK_BENCH_USERS")); err == nil && n > 0 {
		users = n
	}
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		t.Skip("rsync not installed")
	}
	dir := t.TempDir()
	master := filepath.Join(dir, "master")
	line := func() string {
		salt, hash := make([]byte, 16), make([]byte, 32)
		_, _ = rand.Read(salt)
		_, _ = rand.Read(hash)
		return fmt.Sprintf("argon2id:1700000000:2:%s:%s\n", b64url.EncodeToString(salt), b64url.EncodeToString(hash))
	}
	files := map[string]string{"root.admin": line()}
	for i := 0; i < users-1; i++ {
		files[fmt.Sprintf("user%06d.user", i)] = line()
	}
	newStore(t, master, files)
	slaves := map[string]string{}
	for _, s := range []string{"ours-local", "rsync-local", "ours-ssh", "rsync-ssh"} {
		slaves[s] = filepath.Join(dir, s)
		if out, err := exec.Command("cp", "-a", master, slaves[s]).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	// 1% of the users change their password: same size, new content.
	for i := 0; i < users/100; i++ {
		n := fmt.Sprintf("user%06d.user", i*97%(users-1))
		if err := os.WriteFile(filepath.Join(master, n), []byte(line()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	timeIt := func(name string, f func()) time.Duration {
		// Start each run with clean page cache state for dirty data: the
		// stores were just written, and whawty.sync flushes its writes.
		_ = exec.Command("sync").Run()
		start := time.Now()
		f()
		d := time.Since(start)
		t.Logf("%-12s %8.2fs", name, d.Seconds())
		return d
	}
	runRsync := func(args ...string) {
		if out, err := exec.Command(rsync, args...).CombinedOutput(); err != nil {
			t.Fatalf("rsync: %v %s", err, out)
		}
	}
	oursLocal := timeIt("ours-local", func() {
		res, _ := mustApply(t, "sync", map[string]any{"source": master, "destination": slaves["ours-local"]})
		if outNum(t, res, "updated") != int64(users/100) {
			t.Fatalf("updated = %d", outNum(t, res, "updated"))
		}
	})
	rsyncLocal := timeIt("rsync-local", func() { runRsync("-rlpt", "--delete", "-c", master+"/", slaves["rsync-local"]+"/") })

	sshd := testenv.StartSSHD(t)
	oursSSH := timeIt("ours-ssh", func() {
		mustApply(t, "sync", map[string]any{"source": sshd.URL(master), "destination": slaves["ours-ssh"],
			"known_hosts": sshd.KnownHosts, "identity_file": sshd.IdentityFile})
	})
	rsyncSSH := timeIt("rsync-ssh", func() {
		e := fmt.Sprintf("ssh -i %s -p %d -o UserKnownHostsFile=%s -o BatchMode=yes", sshd.IdentityFile, sshd.Port, sshd.KnownHosts)
		runRsync("-rlpt", "--delete", "-c", "-e", e, fmt.Sprintf("%s@%s:%s/", sshd.User, sshd.Host, master), slaves["rsync-ssh"]+"/")
	})
	fmt.Printf("whawty sync bench: %d users, %d changed\n", users, users/100)
	fmt.Printf("  local: whawty.sync %.2fs, rsync -c %.2fs, ratio %.2f\n", oursLocal.Seconds(), rsyncLocal.Seconds(), oursLocal.Seconds()/rsyncLocal.Seconds())
	fmt.Printf("  ssh:   whawty.sync %.2fs, rsync -c %.2fs, ratio %.2f\n", oursSSH.Seconds(), rsyncSSH.Seconds(), oursSSH.Seconds()/rsyncSSH.Seconds())
}

package whawty

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/whawty/whawtytest"
	"github.com/runbookdev/runbook/sdk"
)

// syncFixture is a master store and a slave that differs from it in every
// way a sync handles.
func syncFixture(t *testing.T) (master, slave string) {
	t.Helper()
	dir := t.TempDir()
	admin := hashFor(t, fastScrypt, "pw")
	master = newStore(t, filepath.Join(dir, "master"), map[string]string{
		"root.admin":     admin,
		"same.user":      "argon2id:1:2:QUFB:QkJC\n",
		"new.user":       hashFor(t, fastArgon, "pw"),
		"changed.user":   "argon2id:2:2:QUFB:Q0ND\ntotp: AAAA\n",
		"promoted.admin": "argon2id:1:2:QUFB:RERE\n",
		"adding.user":    "", // placeholder of an add in progress on the master
	})
	slave = newStore(t, filepath.Join(dir, "slave"), map[string]string{
		"root.admin":        admin,
		"same.user":         "argon2id:1:2:QUFB:QkJC\n",
		"changed.user":      "argon2id:1:2:QUFB:QkJC\ntotp: AAAA\n", // same size, other content
		"promoted.user":     "argon2id:1:2:QUFB:RERE\n",
		"gone.user":         "argon2id:1:2:QUFB:RkZG\n",
		".gone.user.x1Y2z3": "partial", // rsync leftover
	})
	_ = os.Chmod(filepath.Join(slave, "same.user"), 0o644)
	return master, slave
}

func syncAndCheck(t *testing.T, src, dst string, extra map[string]any, masterDir, slaveDir string) {
	t.Helper()
	in := map[string]any{"source": src, "destination": dst}
	for k, v := range extra {
		in[k] = v
	}
	before := snapshot(t, slaveDir)

	plan, err := provider.Plan(t.Context(), "sync", &sdk.PlanRequest{Inputs: obj(in)})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]int64{"add": 2, "update": 2, "delete": 3, "unchanged": 1}
	if d := cmp.Diff(wantCounts, plan.Counts); d != "" {
		t.Fatalf("plan counts (-want +got):\n%s\n%v", d, plan.Details)
	}
	if d := cmp.Diff(before, snapshot(t, slaveDir)); d != "" {
		t.Fatalf("plan wrote:\n%s", d)
	}

	res, _ := mustApply(t, "sync", in)
	if got := [3]int64{outNum(t, res, "added"), outNum(t, res, "updated"), outNum(t, res, "deleted")}; got != [3]int64{2, 2, 3} {
		t.Fatalf("added/updated/deleted = %v", got)
	}
	// The slave now mirrors the master (less the empty placeholder), 0600.
	ms, ss := snapshot(t, masterDir), snapshot(t, slaveDir)
	delete(ms, "adding.user")
	if d := cmp.Diff(ms, ss); d != "" {
		t.Fatalf("slave differs from master (-master +slave):\n%s", d)
	}
	// whawty's check passes and .tmp holds no leftovers.
	mustApply(t, "check", map[string]any{"store": slaveDir})
	if ents, _ := os.ReadDir(filepath.Join(slaveDir, ".tmp")); len(ents) != 0 {
		t.Fatalf(".tmp not empty: %v", ents)
	}
	// A second run changes nothing.
	res2, _ := mustApply(t, "sync", in)
	if outNum(t, res2, "added")+outNum(t, res2, "updated")+outNum(t, res2, "deleted") != 0 {
		t.Fatalf("second sync changed things: %s", res2.Outputs.GoString())
	}
	// Undo restores the slave exactly (modes, stray file and all).
	if err := undo(t, "sync", in, res); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, snapshot(t, slaveDir)); d != "" {
		t.Fatalf("undo did not restore the slave (-before +after):\n%s", d)
	}
}

func TestSyncLocal(t *testing.T) {
	master, slave := syncFixture(t)
	syncAndCheck(t, master, slave, nil, master, slave)
}

func TestSyncRefusesBrokenSource(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"user beside admin": {"x.user": "argon2id:1:2:QUFB:QkJC\n", "x.admin": "argon2id:1:2:QUFB:QkJC\n"},
		"no admin":          {"y.user": "argon2id:1:2:QUFB:QkJC\n"},
	} {
		t.Run(name, func(t *testing.T) {
			master, slave := syncFixture(t)
			for n, c := range files {
				if err := os.WriteFile(filepath.Join(master, n), []byte(c), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if name == "no admin" {
				_ = os.Remove(filepath.Join(master, "root.admin"))
				_ = os.Remove(filepath.Join(master, "promoted.admin"))
			}
			before := snapshot(t, slave)
			_, _, err := apply(t, "sync", map[string]any{"source": master, "destination": slave})
			if kindOf(err) != sdk.KindConflict {
				t.Fatalf("err = %v, want conflict", err)
			}
			if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
				t.Fatalf("slave touched:\n%s", d)
			}
		})
	}
}

// TestSyncMirrorsWhatWhawtyWarnsAbout: one unparseable .user file (whawty's
// check only warns about it) does not stop the sync of the whole store.
func TestSyncMirrorsWhatWhawtyWarnsAbout(t *testing.T) {
	master, slave := syncFixture(t)
	if err := os.WriteFile(filepath.Join(master, "y.user"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, rec := mustApply(t, "sync", map[string]any{"source": master, "destination": slave})
	if outNum(t, res, "added") != 3 {
		t.Errorf("added = %d, want 3 (y.user too)", outNum(t, res, "added"))
	}
	if got := readFile(t, filepath.Join(slave, "y.user")); got != "garbage\n" {
		t.Errorf("y.user on the slave = %q", got)
	}
	if !strings.Contains(rec.all(), "warn: source "+master+": mirrored as is, but these users cannot log in") {
		t.Errorf("no warning about y.user:\n%s", rec.all())
	}
	mustApply(t, "check", map[string]any{"store": slave})
}

// TestSyncRefusesSetUnknownToSlave: the master has hashes on a set the
// slave's config lacks; with the slave's config the sync refuses before
// writing, and goes through once the slave knows the set.
func TestSyncRefusesSetUnknownToSlave(t *testing.T) {
	master, slave := syncFixture(t)
	set5 := &paramSet{ID: 5, Argon2: fastArgon.Argon2}
	for _, n := range []string{"root.admin", "late.user"} {
		if err := os.WriteFile(filepath.Join(master, n), []byte(hashFor(t, set5, "pw")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "auth-store.yaml")
	if err := os.WriteFile(cfg, []byte(whawtytest.Config(slave)), 0o400); err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"source": master, "destination": slave, "destination_config": cfg}
	before := snapshot(t, slave)
	for _, step := range []string{"plan", "apply"} {
		var err error
		if step == "plan" {
			_, err = provider.Plan(t.Context(), "sync", &sdk.PlanRequest{Inputs: obj(in)})
		} else {
			_, _, err = apply(t, "sync", in)
		}
		if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), "2 on parameter-set 5") {
			t.Fatalf("%s: err = %v, want conflict naming set 5", step, err)
		}
	}
	if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
		t.Fatalf("slave touched:\n%s", d)
	}
	// Once the slave's config has the set, the sync goes through and the
	// slave passes whawty's check with its config.
	if err := os.WriteFile(cfg, []byte(whawtytest.Config(slave)+"  - id: 5\n    argon2id: {time: 1, memory: 64, threads: 1, length: 32}\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	mustApply(t, "sync", in)
	mustApply(t, "check", map[string]any{"config": cfg})
}

// TestSyncFixesForeignOwner: an unchanged slave file owned by someone else
// than the store's owner is rewritten with the store's owner, and said so.
func TestSyncFixesForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file a foreign owner")
	}
	master, slave := syncFixture(t)
	if err := os.Chown(filepath.Join(slave, "same.user"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(slave, "same.user"), 0o600)
	_, rec := mustApply(t, "sync", map[string]any{"source": master, "destination": slave})
	fi, err := os.Stat(filepath.Join(slave, "same.user"))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := os.Stat(slave)
	uid, gid, _ := fileOwner(fi)
	duid, dgid, _ := fileOwner(dir)
	if uid != duid || gid != dgid {
		t.Errorf("same.user owned by %d:%d after sync, want the store's %d:%d", uid, gid, duid, dgid)
	}
	if !strings.Contains(rec.all(), "same.user is owned by 65534:65534") {
		t.Errorf("foreign owner not reported:\n%s", rec.all())
	}
}

// faultyFS fails the n-th rename or remove (the commit phase of a sync),
// or every Stage when failStage is set.
type faultyFS struct {
	fileSystem
	failStage bool
	failFrom  int        // when > 0, every call from this one on fails (a crash)
	mu        sync.Mutex // guards calls
	calls     int
	failAt    int
}

func (f *faultyFS) fail() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.calls == f.failAt || f.failFrom > 0 && f.calls >= f.failFrom
}

func (f *faultyFS) Rename(a, b string) error {
	if f.fail() {
		return errors.New("rename failed (injected)")
	}
	return f.fileSystem.Rename(a, b)
}

func (f *faultyFS) Remove(p string) error {
	if f.fail() {
		return errors.New("remove failed (injected)")
	}
	return f.fileSystem.Remove(p)
}

func (f *faultyFS) Stage(tmpDir string, data []byte, perm fs.FileMode, uid, gid int) (string, error) {
	if f.failStage {
		return "", errors.New("disk full (injected)")
	}
	return f.fileSystem.Stage(tmpDir, data, perm, uid, gid)
}

// TestSyncResumeAfterCrash: an attempt dies half-way (its own restore
// fails too); the retried attempt gets the journaled checkpoint, and undo
// then restores the slave as it was before the first attempt.
func TestSyncResumeAfterCrash(t *testing.T) {
	master, slave := syncFixture(t)
	before := snapshot(t, slave)
	c := newConns(sshOptions{})
	c.local = &faultyFS{fileSystem: localFS{}, failFrom: 4}
	rec := &recorder{}
	in := syncInputs{Source: master, Destination: slave}
	if _, err := runSync(t.Context(), c, in, nil, (&syncAction{}).Schema(), rec); err == nil {
		t.Fatal("crashing attempt succeeded")
	}
	if len(rec.checkpoint) == 0 {
		t.Fatal("no checkpoint before committing")
	}
	if d := cmp.Diff(before, withoutTemp(snapshot(t, slave))); d == "" {
		t.Fatal("crash simulation left the slave untouched; the test proves nothing")
	}
	res, err := runSync(t.Context(), newConns(sshOptions{}), in, rec.checkpoint, (&syncAction{}).Schema(), &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if err := undo(t, "sync", map[string]any{"source": master, "destination": slave}, res); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(before, withoutTemp(snapshot(t, slave))); d != "" {
		t.Fatalf("undo after resume did not restore the original slave:\n%s", d)
	}
	// A checkpoint for another destination is refused.
	_, other := syncFixture(t)
	if _, err := runSync(t.Context(), newConns(sshOptions{}), syncInputs{Source: master, Destination: other}, rec.checkpoint, (&syncAction{}).Schema(), &recorder{}); kindOf(err) != sdk.KindConflict {
		t.Fatalf("foreign checkpoint: err = %v", err)
	}
}

// withoutTemp drops temp files a crashed attempt left in .tmp.
func withoutTemp(m map[string]string) map[string]string {
	for k := range m {
		if strings.HasPrefix(k, ".tmp/runbook-") {
			delete(m, k)
		}
	}
	return m
}

// intruderFS writes a stray file into dir when the sync flushes.
type intruderFS struct {
	fileSystem
	dir string
}

func (f *intruderFS) Flush(dir string) error {
	if err := os.WriteFile(filepath.Join(f.dir, ".late.user.AbCdEf"), []byte("x"), 0o600); err != nil {
		return err
	}
	return f.fileSystem.Flush(dir)
}

func TestSyncFailureMidwayRestores(t *testing.T) {
	// The fixture's sync commits 7 operations; fail each in turn, and fail
	// staging (before anything is visible).
	for failAt := 0; failAt <= 7; failAt++ {
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			master, slave := syncFixture(t)
			before := snapshot(t, slave)
			c := newConns(sshOptions{})
			c.local = &faultyFS{fileSystem: localFS{}, failAt: failAt, failStage: failAt == 0}
			res, err := runSync(t.Context(), c, syncInputs{Source: master, Destination: slave}, nil, (&syncAction{}).Schema(), &recorder{})
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if res != nil {
				t.Fatalf("result with undo state although the slave was restored: %+v", res)
			}
			if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
				t.Fatalf("slave not restored after failure %d:\n%s", failAt, d)
			}
		})
	}
	// Another writer (an rsync timer) drops a temp file into the slave
	// while the sync commits: the final check fails and the sync undoes
	// its own changes instead of leaving a half-synced slave.
	t.Run("foreign writer", func(t *testing.T) {
		master, slave := syncFixture(t)
		before := snapshot(t, slave)
		c := newConns(sshOptions{})
		c.local = &intruderFS{fileSystem: localFS{}, dir: slave}
		_, err := runSync(t.Context(), c, syncInputs{Source: master, Destination: slave}, nil, (&syncAction{}).Schema(), &recorder{})
		if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), ".late.user.AbCdEf") {
			t.Fatalf("err = %v, want conflict naming the intruder", err)
		}
		after := snapshot(t, slave)
		delete(after, ".late.user.AbCdEf")
		if d := cmp.Diff(before, after); d != "" {
			t.Fatalf("sync's own changes not undone:\n%s", d)
		}
	})
	// A foreign directory in the destination is refused before any write.
	master, slave := syncFixture(t)
	if err := os.Mkdir(filepath.Join(slave, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, slave)
	_, _, err := apply(t, "sync", map[string]any{"source": master, "destination": slave})
	if kindOf(err) != sdk.KindConflict {
		t.Fatalf("err = %v, want conflict (foreign directory)", err)
	}
	if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
		t.Fatalf("slave touched:\n%s", d)
	}
}

func TestSyncSSH(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	opts := map[string]any{"known_hosts": sshd.KnownHosts, "identity_file": sshd.IdentityFile}
	t.Run("ssh to local", func(t *testing.T) {
		master, slave := syncFixture(t)
		syncAndCheck(t, sshd.URL(master), slave, opts, master, slave)
	})
	t.Run("ssh to local through a snapshot", func(t *testing.T) {
		// Large stores are read with one stream over an exec channel.
		defer func(n int64) { snapshotMinDirSize = n }(snapshotMinDirSize)
		snapshotMinDirSize = 0
		master, slave := syncFixture(t)
		in := map[string]any{"source": sshd.URL(master), "destination": slave}
		for k, v := range opts {
			in[k] = v
		}
		res, _ := mustApply(t, "sync", in)
		if got := [3]int64{outNum(t, res, "added"), outNum(t, res, "updated"), outNum(t, res, "deleted")}; got != [3]int64{2, 2, 3} {
			t.Fatalf("added/updated/deleted = %v", got)
		}
		// The snapshot sees what the files hold.
		loc, _ := parseLocation(sshd.URL(master))
		f, err := dialSFTP(t.Context(), loc.SSH, sshOptions{KnownHosts: sshd.KnownHosts, IdentityFile: sshd.IdentityFile})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ents, snapData, ok, err := f.Snapshot(t.Context(), master, nil)
		if err != nil || !ok {
			t.Fatalf("snapshot: ok=%v err=%v", ok, err)
		}
		snap := map[string]fileData{}
		for i, e := range ents {
			if snapData[i].Entry != nil {
				snap[e.Name] = snapData[i]
			}
		}
		local, err := localFS{}.ReadFiles(t.Context(), master, sortedKeys(snap))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(local, snap); d != "" {
			t.Fatalf("snapshot differs from the files (-local +snapshot):\n%s", d)
		}
		// The listing covers every entry, with full modes.
		var got []string
		for _, e := range ents {
			got = append(got, fmt.Sprintf("%s %v", e.Name, e.Mode))
		}
		var want []string
		des, _ := os.ReadDir(master)
		for _, de := range des {
			fi, _ := de.Info()
			want = append(want, fmt.Sprintf("%s %v", de.Name(), fi.Mode()))
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("snapshot listing (-want +got):\n%s", d)
		}
	})
	t.Run("local to ssh", func(t *testing.T) {
		master, slave := syncFixture(t)
		syncAndCheck(t, master, sshd.URL(slave), opts, master, slave)
	})
	t.Run("both ways through a snapshot", func(t *testing.T) {
		// The one-stream read of a remote destination: modes, owners and
		// contents must serve undo exactly as SFTP reads do.
		defer func(n int64) { snapshotMinDirSize = n }(snapshotMinDirSize)
		snapshotMinDirSize = 0
		master, slave := syncFixture(t)
		syncAndCheck(t, master, sshd.URL(slave), opts, master, slave)
		master, slave = syncFixture(t)
		syncAndCheck(t, sshd.URL(master), slave, opts, master, slave)
		// Files staged while the source streamed in are removed when the
		// source turns out unfit to mirror.
		master, slave = syncFixture(t)
		if err := os.WriteFile(filepath.Join(master, "new.admin"), []byte("argon2id:1:2:QUFB:QkJC\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, slave)
		in := map[string]any{"source": sshd.URL(master), "destination": slave}
		for k, v := range opts {
			in[k] = v
		}
		if _, _, err := apply(t, "sync", in); kindOf(err) != sdk.KindConflict {
			t.Fatalf("err = %v, want conflict (new.user beside new.admin)", err)
		}
		if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
			t.Fatalf("refused sync left traces (-before +after):\n%s", d)
		}
	})
	t.Run("config over ssh", func(t *testing.T) {
		f := newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "pw")})
		orig := readFile(t, f.config)
		in := map[string]any{"config": sshd.URL(f.config), "id": 9, "algorithm": "argon2id", "memory": 64, "threads": 1}
		for k, v := range opts {
			in[k] = v
		}
		res, _ := mustApply(t, "param_set_add", in)
		if !strings.Contains(readFile(t, f.config), "id: 9") {
			t.Fatal("set not added over ssh")
		}
		if err := undo(t, "param_set_add", in, res); err != nil {
			t.Fatal(err)
		}
		if readFile(t, f.config) != orig {
			t.Fatal("undo over ssh not byte-identical")
		}
		vin := map[string]any{"config": sshd.URL(f.config), "username": "root", "password": "pw"}
		for k, v := range opts {
			vin[k] = v
		}
		mustApply(t, "verify_password", vin)
	})
	t.Run("host key mismatch", func(t *testing.T) {
		master, slave := syncFixture(t)
		before := snapshot(t, slave)
		_, _, err := apply(t, "sync", map[string]any{"source": master, "destination": sshd.URL(slave),
			"known_hosts": sshd.WrongKnownHosts(t), "identity_file": sshd.IdentityFile})
		if kindOf(err) != sdk.KindAuth || !strings.Contains(err.Error(), "mismatch") {
			t.Fatalf("err = %v, want auth: host key mismatch", err)
		}
		if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
			t.Fatalf("slave touched:\n%s", d)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		_ = os.WriteFile(empty, nil, 0o600)
		_, _, err := apply(t, "check", map[string]any{"store": sshd.URL("/tmp"), "known_hosts": empty, "identity_file": sshd.IdentityFile})
		if kindOf(err) != sdk.KindAuth || sdk.Classify(err).Hint == "" {
			t.Fatalf("err = %v, want auth with hint", err)
		}
	})
	t.Run("wrong user key", func(t *testing.T) {
		other := filepath.Join(sshd.Dir, "host_key") // a valid key that is not authorized
		_, _, err := apply(t, "check", map[string]any{"store": sshd.URL("/tmp"), "known_hosts": sshd.KnownHosts, "identity_file": other})
		if kindOf(err) != sdk.KindAuth {
			t.Fatalf("err = %v, want auth", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		url := strings.Replace(sshd.URL("/tmp"), sshd.Addr(), "127.0.0.1:1", 1)
		_, _, err := apply(t, "check", map[string]any{"store": url, "known_hosts": sshd.KnownHosts, "identity_file": sshd.IdentityFile})
		if kindOf(err) != sdk.KindUnreachable || !sdk.Classify(err).Retryable {
			t.Fatalf("err = %v, want retryable unreachable", err)
		}
	})
}

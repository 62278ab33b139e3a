//go:build unix

package core

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// requireRoot skips a test that needs root, except in CI (CI=true),
// where the tests run as root and a skip would hide the check.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root, and CI runs the tests as root")
		}
		t.Skip("needs root")
	}
}

// nobody returns the uid and gid of the user "nobody".
func nobody(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func ownerOfPath(t *testing.T, path string) fileOwner {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return fileOwner{UID: int(s.Uid), GID: int(s.Gid)}
}

// raceDuration bounds the race test: ~2 s in make test, longer with
// RUNBOOK_RACE_DURATION (make fuzz).
func raceDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("RUNBOOK_RACE_DURATION")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Second
}

// TestFileOwnerRace: an attacker (another uid) who can write the
// directory swaps a symlink to a root-only file in at the path, over and
// over, while core.file writes the path with owner set to the attacker.
// The root-only file's owner, mode and content must never change.
// The attacker has 2 s (RUNBOOK_RACE_DURATION to change it); the code
// before the fix lost the file within about 20 writes.
func TestFileOwnerRace(t *testing.T) {
	requireRoot(t)
	uid, gid := nobody(t)
	base, err := os.MkdirTemp("", "runbook-file-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	victim := filepath.Join(t.TempDir(), "shadow") // in a root-only directory
	if err := os.WriteFile(victim, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, uid, gid); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(base, "attacker")
	copyExe(t, exe)
	target := filepath.Join(shared, "app.conf")
	d := raceDuration()
	cmd := exec.Command(exe, "-test.run=^TestFileOwnerRaceAttacker$")
	cmd.Env = []string{"RUNBOOK_TEST_ATTACK=" + target, "RUNBOOK_TEST_VICTIM=" + victim, "RUNBOOK_RACE_DURATION=" + d.String()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	p := sdktest.Local(t, New())
	in := sdktest.Object(map[string]any{"path": target, "content": "app=1\n", "owner": strconv.Itoa(uid) + ":" + strconv.Itoa(gid), "mode": "0644"})
	tries := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("attacker: %v\n%s", err, out.Bytes())
			}
			t.Logf("%d writes against the attacker in %v", tries, d)
			return
		default:
		}
		tries++
		// Refusing a symlink is fine; the undo (which restores an owner
		// too) runs against the attacker as well.
		if res, _, err := sdktest.Apply(t, p, "file", in); err == nil && tries%2 == 0 {
			sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState, Force: true})
		}
		b, _ := os.ReadFile(victim)
		st, _ := os.Stat(victim)
		if o := ownerOfPath(t, victim); o.UID != 0 || st.Mode().Perm() != 0o600 || string(b) != "root only" {
			cmd.Process.Kill()
			t.Fatalf("after %d writes the root-only file is %v %v %q", tries, o, st.Mode(), b)
		}
	}
}

// TestFileOwnerRaceAttacker is the attacker of TestFileOwnerRace, run as
// another user; it does nothing in a normal run.
func TestFileOwnerRaceAttacker(t *testing.T) {
	target, victim := os.Getenv("RUNBOOK_TEST_ATTACK"), os.Getenv("RUNBOOK_TEST_VICTIM")
	if target == "" {
		t.Skip("only run by TestFileOwnerRace")
	}
	tmp := target + ".swap"
	for end := time.Now().Add(raceDuration()); time.Now().Before(end); {
		os.Remove(tmp)
		if err := os.Symlink(victim, tmp); err != nil {
			t.Fatal(err)
		}
		os.Rename(tmp, target)
	}
}

func copyExe(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFileKeepsOwnerAndMode: overwriting keeps the file's owner and mode
// unless the step sets them; undo restores both.
func TestFileKeepsOwnerAndMode(t *testing.T) {
	requireRoot(t)
	uid, gid := nobody(t)
	each(t, func(t *testing.T, p sdk.Provider) {
		path := filepath.Join(t.TempDir(), "app.conf")
		os.WriteFile(path, []byte("before"), 0o640)
		os.Chown(path, uid, gid)
		want := fileOwner{UID: uid, GID: gid}

		in := sdktest.Object(map[string]any{"path": path, "content": "kept"})
		res, _ := sdktest.MustApply(t, p, "file", in)
		if o := ownerOfPath(t, path); o != want {
			t.Fatalf("owner after overwrite = %v, want %v", o, want)
		}
		assertFile(t, path, "kept", 0o640, false)
		sdktest.AssertOutput(t, res, "changed", cty.True)

		set := sdktest.Object(map[string]any{"path": path, "content": "root", "owner": "0:0", "mode": "0600"})
		res2, _ := sdktest.MustApply(t, p, "file", set)
		if o := ownerOfPath(t, path); o != (fileOwner{}) {
			t.Fatalf("owner = %v, want 0:0", o)
		}
		if _, err := sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: set, Outputs: res2.Outputs, UndoState: res2.UndoState}); err != nil {
			t.Fatal(err)
		}
		if o := ownerOfPath(t, path); o != want {
			t.Fatalf("owner after undo = %v, want %v", o, want)
		}
		assertFile(t, path, "kept", 0o640, false)

		// A drift of the owner alone is named.
		os.Chown(path, 0, 0)
		_, err := sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState})
		sdktest.AssertKind(t, err, sdk.KindConflict)
	})
}

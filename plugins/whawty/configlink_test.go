package whawty

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// linkedConfig is a config behind a relative symlink, as deployments keep
// /etc/whawty/auth-store.yaml -> ../../srv/whawty/auth-store.yaml.
func linkedConfig(t *testing.T, mode os.FileMode) (link, target string, f fixture) {
	t.Helper()
	f = newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "pw")})
	target = filepath.Join(f.dir, "real", "auth-store.yaml")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.config, target); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, mode); err != nil {
		t.Fatal(err)
	}
	link = filepath.Join(f.dir, "etc", "auth-store.yaml")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../real/auth-store.yaml", link); err != nil {
		t.Fatal(err)
	}
	return link, target, f
}

// assertLinkIntact checks link is still the same symlink and target has mode.
func assertLinkIntact(t *testing.T, link, target string, mode os.FileMode) {
	t.Helper()
	if to, err := os.Readlink(link); err != nil || to != "../real/auth-store.yaml" {
		t.Fatalf("config link replaced: readlink = %q, %v", to, err)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != mode {
		t.Fatalf("target mode = %v, want a regular file with %v", fi.Mode(), mode)
	}
	if ents, _ := os.ReadDir(filepath.Dir(link)); len(ents) != 1 {
		t.Fatalf("leftovers beside the link: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 1 {
		t.Fatalf("leftovers beside the target: %v", ents)
	}
}

// TestConfigBehindSymlink: an edit goes to the link's target, in place
// (atomically, keeping its mode), the link stays; undo restores it the
// same way; a target others may write is refused.
func TestConfigBehindSymlink(t *testing.T) {
	sshd := testenv.StartSSHD(t)
	for _, over := range []string{"local", "ssh"} {
		t.Run(over, func(t *testing.T) {
			link, target, _ := linkedConfig(t, 0o600)
			orig := readFile(t, target)
			in := map[string]any{"config": link, "id": 7, "algorithm": "argon2id", "memory": 64, "threads": 1}
			if over == "ssh" {
				in["config"] = sshd.URL(link)
				in["known_hosts"], in["identity_file"] = sshd.KnownHosts, sshd.IdentityFile
			}
			res := mustApplyRes(t, "param_set_add", in)
			if !strings.Contains(readFile(t, target), "id: 7") {
				t.Fatalf("target not edited:\n%s", readFile(t, target))
			}
			assertLinkIntact(t, link, target, 0o600)
			if err := undo(t, "param_set_add", in, res); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, target); got != orig {
				t.Fatalf("undo:\n%s\nwant:\n%s", got, orig)
			}
			assertLinkIntact(t, link, target, 0o600)
		})
	}
	t.Run("writable by others", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o666, 0o620} {
			link, target, _ := linkedConfig(t, mode)
			orig := readFile(t, target)
			_, _, err := apply(t, "param_set_add", map[string]any{"config": link, "id": 7})
			if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), "writable by group or others") {
				t.Fatalf("mode %v: err = %v, want conflict", mode, err)
			}
			if readFile(t, target) != orig {
				t.Fatal("config written")
			}
			assertLinkIntact(t, link, target, mode)
		}
	})
}

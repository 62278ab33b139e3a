package session

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGitInfo(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.org", "-c", "user.name=t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if g := gitInfo(dir); g != nil {
		t.Errorf("outside a repository: %+v, want nil", g)
	}
	git("init", "-q")
	if g := gitInfo(dir); g != nil {
		t.Errorf("before the first commit: %+v, want nil", g)
	}
	file := filepath.Join(dir, "main.hcl")
	os.WriteFile(file, []byte("# v1\n"), 0o644)
	git("add", "main.hcl")
	git("commit", "-q", "-m", "first")
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	head := string(out[:len(out)-1])
	if g := gitInfo(dir); g == nil || g.Commit != head || g.Dirty {
		t.Errorf("clean checkout: %+v, want commit %s, not dirty", g, head)
	}
	os.WriteFile(filepath.Join(dir, "untracked.txt"), []byte("x"), 0o644)
	if g := gitInfo(dir); g == nil || g.Dirty {
		t.Errorf("an untracked file made the checkout dirty: %+v", g)
	}
	os.WriteFile(file, []byte("# v2\n"), 0o644)
	if g := gitInfo(dir); g == nil || g.Commit != head || !g.Dirty {
		t.Errorf("changed tracked file: %+v, want commit %s, dirty", g, head)
	}
}

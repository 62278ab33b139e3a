package session

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestGitInfoEnv: the commands a repository's config makes git run (here
// core.fsmonitor) see neither the state key nor the variables' values.
func TestGitInfoEnv(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	dump := filepath.Join(dir, "env.txt")
	hook := filepath.Join(dir, "fsmonitor.sh")
	os.WriteFile(hook, []byte("#!/bin/sh\nenv > '"+dump+"'\n"), 0o755)
	if out, err := exec.Command("git", "-C", dir, "config", "core.fsmonitor", hook).CombinedOutput(); err != nil {
		t.Fatalf("git config: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("# v1\n"), 0o644)
	if out, err := exec.Command("git", "-C", dir, "add", "main.hcl").CombinedOutput(); err != nil {
		t.Fatalf("git add: %v\n%s", err, out)
	}
	t.Setenv("RUNBOOK_STATE_KEY", "canary-state-key")
	t.Setenv("RUNBOOK_VAR_pw", "canary-var-pw")
	gitInfo(dir)
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Skipf("this git ran no fsmonitor: %v", err)
	}
	if s := string(b); strings.Contains(s, "canary-state-key") || strings.Contains(s, "canary-var-pw") {
		t.Errorf("a command git ran sees the engine's secrets:\n%s", s)
	}
}

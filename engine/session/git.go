package session

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/internal/safeenv"
)

// gitLater starts asking git about dir and returns what waits for the
// answer (once; later calls return the same), so that git runs while the
// runbook is checked.
func gitLater(dir string) func() *journal.GitInfo {
	ch := make(chan *journal.GitInfo, 1)
	go func() {
		abs, _ := filepath.Abs(dir)
		ch <- gitInfo(abs)
	}()
	return sync.OnceValue(func() *journal.GitInfo { return <-ch })
}

// gitInfo is the commit checked out in dir and whether tracked files
// differ from it (nil outside a repository or before the first commit).
// One git process answers both.
func gitInfo(dir string) *journal.GitInfo {
	cmd := exec.Command("git", "-C", dir, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
	// A repository's config can run commands (core.fsmonitor): they get no
	// state key nor variable values.
	cmd.Env = safeenv.Environ()
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var g journal.GitInfo
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# branch.oid "):
			g.Commit = strings.TrimPrefix(line, "# branch.oid ")
		case strings.HasPrefix(line, "#"):
		default:
			g.Dirty = true
		}
	}
	if g.Commit == "" || g.Commit == "(initial)" {
		return nil
	}
	return &g
}

package session

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
)

// StateDirEnv overrides the state directory of every command, like
// -state-dir (the flag wins).
const StateDirEnv = "RUNBOOK_STATE_DIR"

// FindStateDir is the state directory found from dir (a runbook's
// directory, or the working directory for the commands that name a run):
// the nearest `.runbook` directory walking up from dir, or `.runbook` in
// dir when there is none. The result is relative when dir is.
func FindStateDir(dir string) string {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Join(dir, DefaultStateDir)
	}
	up := dir
	for cur := abs; ; {
		if fi, err := os.Stat(filepath.Join(cur, DefaultStateDir)); err == nil && fi.IsDir() {
			return filepath.Clean(filepath.Join(up, DefaultStateDir))
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return filepath.Join(dir, DefaultStateDir)
		}
		cur = parent
		if filepath.IsAbs(up) {
			up = cur
		} else {
			up = filepath.Join(up, "..")
		}
	}
}

// overrideStateDir is the state directory the caller or RUNBOOK_STATE_DIR
// names ("" when neither does).
func (s *Session) overrideStateDir() string {
	if s.opts.StateDir != "" {
		return s.opts.StateDir
	}
	if spec := s.stateSpec(); spec != "" && !journal.IsPostgresURL(spec) {
		return spec
	}
	return s.opts.Getenv(StateDirEnv)
}

// stateDirFor is the state directory of a runbook: the override, or the
// one found from the runbook's directory (FindStateDir).
func (s *Session) stateDirFor(cfg *lang.Config) string {
	if d := s.overrideStateDir(); d != "" {
		return d
	}
	return FindStateDir(RunbookDir(cfg))
}

// namedStateDir is the state directory of the commands that name a run
// (resume, rollback, runs, approve, unlock): the override, or the one found
// from the working directory.
func (s *Session) namedStateDir() string {
	if d := s.overrideStateDir(); d != "" {
		return d
	}
	return FindStateDir(".")
}

// StateDir is the state directory the commands that name a run use.
func (s *Session) StateDir() string { return s.namedStateDir() }

// stateFlag is what a printed command needs to find stateDir (or the
// database a URL names, see databaseFlag) when pasted
// in the working directory (where RUNBOOK_STATE_DIR stays set): nothing
// when the commands that name a run find it there without -state-dir, else
// " -state-dir DIR" (relative to the working directory when below it,
// quoted for a shell when needed).
func (s *Session) stateFlag(stateDir string) string {
	if journal.IsPostgresURL(stateDir) {
		return s.databaseFlag(stateDir)
	}
	found := s.opts.Getenv(StateDirEnv)
	if spec := s.opts.Getenv(StateEnv); found == "" && spec != "" && !journal.IsPostgresURL(spec) {
		found = spec
	}
	if found == "" {
		found = FindStateDir(".")
	}
	if sameDir(stateDir, found) {
		return ""
	}
	d := stateDir
	if abs, err := filepath.Abs(stateDir); err == nil {
		d = abs
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
				d = rel
			}
		}
	}
	return " -state-dir " + journal.ShellWord(d)
}

func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

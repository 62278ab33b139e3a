package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
)

// The state key seals the secrets a run journals (sensitive variables,
// inputs and outputs, undo state that holds a secret). It comes from, in
// order: RUNBOOK_STATE_KEY (a passphrase, or a key file's content: teams
// and CI), RUNBOOK_STATE_KEY_FILE (a key file; "none" stores no secret),
// or the user's key file, DefaultKeyFile, created by the first apply (or
// `runbook init`) when there is none.

// keyState is where the session's state key comes from.
type keyState struct {
	sealer  *journal.Sealer // nil: no key (yet)
	create  string          // the user's key file, to create at the first apply ("" : none to create)
	warning string          // about the key, emitted once
}

// DefaultKeyFile is the user's state key file, in the user's config
// directory (as os.UserConfigDir, read through getenv); "" when the
// environment names none.
func DefaultKeyFile(getenv func(string) string) string {
	var dir string
	switch runtime.GOOS {
	case "windows":
		dir = getenv("AppData")
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			dir = filepath.Join(h, "Library", "Application Support")
		}
	case "plan9":
		if h := getenv("home"); h != "" {
			dir = filepath.Join(h, "lib")
		}
	default:
		dir = getenv("XDG_CONFIG_HOME")
		if !filepath.IsAbs(dir) {
			dir = ""
			if h := getenv("HOME"); h != "" {
				dir = filepath.Join(h, ".config")
			}
		}
	}
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "runbook", "state.key")
}

// Key is a state key found once (LoadKey) and given to many sessions
// (Options.Key): a worker derives a passphrase's key (argon2id, about a
// second) once, not once per run.
type Key struct{ ks keyState }

// LoadKey finds the state key the environment names, as New does: a
// passphrase is stretched here, once. The user's key file is only read
// (a session's EnsureKey creates it when missing).
func LoadKey(getenv func(string) string) (*Key, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	ks, err := loadKey(getenv)
	if err != nil {
		return nil, err
	}
	return &Key{ks: ks}, nil
}

// loadKey finds the session's state key; the user's key file is only
// read here (EnsureKey creates it).
func loadKey(getenv func(string) string) (keyState, error) {
	var ks keyState
	var err error
	if text := getenv(journal.EnvStateKey); text != "" {
		ks.sealer, ks.warning, err = journal.ParseKey(text, journal.EnvStateKey)
		return ks, err
	}
	if p := getenv(journal.EnvStateKeyFile); p == journal.NoKeyFile {
		return ks, nil
	} else if p != "" {
		ks.sealer, ks.warning, err = journal.ReadKeyFile(p)
		if err != nil {
			err = fmt.Errorf("%s: %w", journal.EnvStateKeyFile, err)
		}
		return ks, err
	}
	p := DefaultKeyFile(getenv)
	if p == "" {
		ks.warning = "no state key: the environment names no config directory (set HOME, or RUNBOOK_STATE_KEY_FILE): secrets are not journaled and resume and rollback ask for them again"
		return ks, nil
	}
	ks.sealer, ks.warning, err = journal.ReadKeyFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return keyState{create: p}, nil
	}
	return ks, err
}

// EnsureKey makes sure the session has a state key: it creates the user's
// key file when there is none yet (the first apply, `runbook init`).
// created is its path when it was created now.
func (s *Session) EnsureKey() (created string, err error) {
	if s.key.warning != "" {
		s.emit(event.Event{Type: event.Warning, Message: s.key.warning})
		s.key.warning = ""
	}
	if s.key.sealer != nil || s.key.create == "" {
		return "", nil
	}
	_, statErr := os.Stat(s.key.create)
	if s.key.sealer, err = journal.NewKeyFile(s.key.create); err != nil {
		return "", err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		created = s.key.create
		s.emit(event.Event{Type: event.Warning, Message: fmt.Sprintf("created the state key %s (fingerprint %s): it seals the secrets runs journal; "+
			"keep it, and give it to whoever rolls back your runs (%s)", created, s.key.sealer.Fingerprint(), journal.EnvStateKeyFile)})
	}
	s.key.create = ""
	return created, nil
}

// KeyInfo says which state key the session seals with: its fingerprint
// and where it comes from ("" when none).
func (s *Session) KeyInfo() (fingerprint, source string) {
	return s.key.sealer.Fingerprint(), s.key.sealer.Source()
}

// SealerFor is the key to read run m's secrets with, bound to it; nil
// (with a warning event naming the key the run was sealed with and how to
// supply it) when this session's key is not that one.
func (s *Session) SealerFor(m *journal.Meta) *journal.Sealer {
	if m.Key == "" || m.Key == s.key.sealer.Fingerprint() {
		return s.key.sealer.ForRun(m)
	}
	s.emit(event.Event{Type: event.Warning, RunID: m.ID, Message: s.keyMismatch(m)})
	return nil
}

// keyMismatch says which key run m was sealed with and how to supply it.
func (s *Session) keyMismatch(m *journal.Meta) string {
	have := "no state key is set"
	if fp, src := s.KeyInfo(); fp != "" {
		have = fmt.Sprintf("the key here is %s (from %s)", fp, src)
	}
	where := DefaultKeyFile(s.opts.Getenv)
	if where == "" {
		where = "the state.key file of the user who ran it"
	}
	return fmt.Sprintf("run %s's secrets were sealed with the state key %s and %s: they cannot be read. "+
		"Supply that key with %s=PATH (the key file; by default %s) or %s=PASSPHRASE, "+
		"or give the sensitive variables again (-var, -var-file, RUNBOOK_VAR_NAME)",
		m.ID, m.Key, have, journal.EnvStateKeyFile, where, journal.EnvStateKey)
}

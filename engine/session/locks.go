package session

import (
	"errors"

	"github.com/runbookdev/runbook/engine/journal"
)

// lockErr gives a *journal.LockedError the -state-dir (or -state) its
// printed commands need to find where (see stateFlag); other errors pass
// unchanged.
func (s *Session) lockErr(err error, where string) error {
	var le *journal.LockedError
	if errors.As(err, &le) {
		le.StateFlag = s.stateFlag(where)
	}
	return err
}

// LockStatus reports who holds key in the state directory, without taking
// it.
func (s *Session) LockStatus(key string) (journal.LockStatus, error) {
	st, _, err := s.openStore(s.namedStateDir())
	if err != nil {
		return journal.LockStatus{}, err
	}
	return st.Status(key)
}

// Unlock releases key in the state directory whatever run holds it, unless
// its holder is active (a *journal.LockedError with Live set: an active
// holder's lock is never broken). It returns the holder it removed (zero
// when the key was free). The run that held it stays as it is: unfinished
// runs can still be resumed or rolled back.
func (s *Session) Unlock(key string) (journal.Holder, error) {
	st, where, err := s.openStore(s.namedStateDir())
	if err != nil {
		return journal.Holder{}, err
	}
	h, err := st.Unlock(key)
	return h, s.lockErr(err, where)
}

// RunInfo is a journaled run as listed.
type RunInfo struct {
	State *journal.State
	// Next are the commands that continue the run from its state (empty
	// when there is nothing to do).
	Next Commands
}

// runInfo lists st: a run the journal says is running (or rolling back)
// while no live process holds it is interrupted (its process died); it
// can be resumed (or rolled back further).
func (s *Session) runInfo(store store, where string, st *journal.State) *RunInfo {
	ri := &RunInfo{State: st}
	if st.Meta == nil || st.State == journal.RunCorrupt {
		return ri
	}
	state := st.State
	if state == journal.RunRunning || state == journal.RunRollingBack {
		ls, err := store.Status("run:" + st.Meta.ID)
		if err != nil || ls.Active {
			return ri
		}
		cp := *st
		cp.State = journal.RunInterrupted
		ri.State = &cp
	}
	if state == journal.RunRunning {
		state = journal.RunInterrupted
	}
	ri.Next = next(state, s.commands(where, st.Meta.ID))
	return ri
}

// next is what can be done with a run in state: resume it (unfinished),
// roll it back (anything not rolled back), or neither.
func next(state string, cmds Commands) Commands {
	switch state {
	case journal.RunSucceeded, journal.RunRollbackFailed, journal.RunRollingBack:
		return Commands{Rollback: cmds.Rollback, StateFlag: cmds.StateFlag}
	case journal.RunRolledBack, journal.RunRunning:
		return Commands{}
	}
	return cmds
}

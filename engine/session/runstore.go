package session

import "github.com/runbookdev/runbook/engine/journal"

// RunStore is the store of runs of the commands that name a run (the
// database -state or RUNBOOK_STATE names, else the state directory), for
// readers such as the run viewer.
func (s *Session) RunStore() (journal.Store, error) {
	st, _, err := s.openStore(s.namedStateDir())
	return st, err
}

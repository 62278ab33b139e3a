package session

import (
	"fmt"
	"sort"
	"strings"

	"github.com/runbookdev/runbook/engine/journal"
)

// Recovery says how to go on after a rollback_failed run: which undos
// failed and why, and the three ways on.
type Recovery struct {
	// Failed are the steps whose undo failed, in journal order, with
	// UndoError set.
	Failed []*journal.StepState
	// Retry rolls the run back again once the cause is fixed.
	Retry string
	// Skip rolls it back leaving the failed steps as they are (records
	// the skip); one -skip per failed step.
	Skip string
	// Unlock frees the run's lock key for new runs, leaving the run
	// unfinished ("" when the run holds no key).
	Unlock string
}

// recovery reads how a rollback_failed run can go on from its journal
// (nil when it cannot be read).
func (s *Session) recovery(store store, where, runID string) *Recovery {
	st, err := store.Load(runID)
	if err != nil || st.Meta == nil {
		return nil
	}
	flag := s.stateFlag(where)
	r := &Recovery{Retry: "runbook rollback" + flag + " " + runID}
	skip := r.Retry
	for _, a := range st.Order {
		if ss := st.Steps[a]; ss.State == journal.StepUndoFailed {
			r.Failed = append(r.Failed, ss)
			skip += " -skip " + journal.ShellWord(a)
		}
	}
	if len(r.Failed) > 0 {
		r.Skip = skip
	}
	if st.Meta.Lock != "" {
		r.Unlock = "runbook unlock" + flag + " " + journal.ShellWord(st.Meta.Lock)
	}
	return r
}

// SkipUndo records in run id's journal that the undo of each step (an
// address, or a step name for all its instances) is not to be done: a
// later Rollback leaves them as they are and undoes what they depend on.
// Only steps not undone yet can be skipped. It returns the run's id.
func (s *Session) SkipUndo(id string, steps ...string) (string, error) {
	store, where, err := s.openStore(s.namedStateDir())
	if err != nil {
		return "", err
	}
	id, err = store.Resolve(id)
	if err != nil {
		return "", err
	}
	var h held
	defer h.release(true)
	if err := lockRun(store, id, &h); err != nil {
		return "", s.lockErr(err, where)
	}
	j, st, err := store.Open(id)
	if err != nil {
		return "", err
	}
	defer j.Close()
	var recs []*journal.Record
	who := Holder()
	for _, want := range steps {
		var addrs []string
		for _, a := range st.Order {
			if a == want || strings.HasPrefix(a, want+"[") {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			names := append([]string(nil), st.Order...)
			sort.Strings(names)
			return "", fmt.Errorf("run %s has no step %q (it has %s)", id, want, strings.Join(names, ", "))
		}
		for _, a := range addrs {
			switch st.Steps[a].State {
			case journal.StepUndone, journal.StepUndoWaived, journal.StepPending, journal.StepSkipped:
				return "", fmt.Errorf("step %s of run %s is %s: there is no undo to skip", a, id, st.Steps[a].State)
			}
			recs = append(recs, &journal.Record{Type: journal.RecUndoWaived, Step: a,
				Message: fmt.Sprintf("undo skipped by %s@%s (rollback -skip)", who.User, who.Host)})
		}
	}
	for _, r := range recs {
		if err := j.Append(r); err != nil {
			return "", err
		}
	}
	return id, nil
}

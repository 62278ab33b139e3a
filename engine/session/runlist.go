package session

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/runbookdev/runbook/engine/journal"
)

// RunQuery selects the runs FindRuns lists. The zero RunQuery lists every
// run.
type RunQuery struct {
	Runbook string // the runbook block's name; "" any
	Lock    string // the lock key; "" any
	// Status is the state as listed ("interrupted" for a run whose
	// process died); "" any.
	Status string
	Limit  int // at most this many runs, newest first; 0: all
}

// journalStates are the journaled states of the runs listed in status
// (nil: any, the store cannot tell).
func journalStates(status string) []string {
	switch status {
	case "", journal.RunCorrupt:
		return nil
	case journal.RunInterrupted:
		return []string{journal.RunInterrupted, journal.RunRunning, journal.RunRollingBack}
	}
	return []string{status}
}

// runPages reads the ids of the runs f selects, newest first, a page at a
// time: from the database with a query per page (the filter applied
// there), from a directory all at once (then filtered here).
type runPages struct {
	store journal.Store
	f     journal.RunFilter
	size  int
	done  bool
}

func (p *runPages) next() ([]string, error) {
	if p.done {
		return nil, nil
	}
	if l, ok := p.store.(journal.RunLister); ok {
		f := p.f
		f.Limit = p.size
		ids, err := l.ListRuns(f)
		if err != nil {
			return nil, err
		}
		if len(ids) < p.size {
			p.done = true
		} else {
			p.f.Before = ids[len(ids)-1]
		}
		return ids, nil
	}
	p.done = true
	return p.store.List()
}

// matches checks f on a run of a store that cannot select runs itself.
func matches(f journal.RunFilter, st *journal.State) bool {
	if st.Meta != nil && (f.Runbook != "" && st.Meta.Runbook != f.Runbook || f.Lock != "" && st.Meta.Lock != f.Lock) {
		return false
	}
	if st.Meta == nil && (f.Runbook != "" || f.Lock != "" || f.After != "") {
		return false
	}
	if f.After != "" && st.Meta.ID <= f.After {
		return false
	}
	in := func(list []string) bool {
		for _, x := range list {
			if st.State == x {
				return true
			}
		}
		return false
	}
	return (len(f.States) == 0 || in(f.States)) && !in(f.NotStates)
}

// eachRun loads the runs f selects, newest first, until visit returns
// false. Runs that cannot be read are skipped.
func eachRun(store journal.Store, f journal.RunFilter, size int, visit func(*journal.State) bool) error {
	p := &runPages{store: store, f: f, size: max(size, 1)}
	lister, _ := store.(journal.RunLister)
	for {
		ids, err := p.next()
		if err != nil || len(ids) == 0 {
			return err
		}
		if lister != nil {
			// The query applied f; the page is read with one more.
			sts, err := lister.LoadRuns(ids)
			if err != nil {
				return err
			}
			for _, st := range sts {
				if !visit(st) {
					return nil
				}
			}
			continue
		}
		for _, id := range ids {
			st, err := store.Load(id)
			if err != nil || !matches(f, st) {
				continue
			}
			if !visit(st) {
				return nil
			}
		}
	}
}

// firstRun is the newest run f selects for which ok holds ("" when none).
func firstRun(store journal.Store, f journal.RunFilter, ok func(*journal.State) bool) (id string, err error) {
	err = eachRun(store, f, 20, func(st *journal.State) bool {
		if ok(st) {
			id = st.Meta.ID
			return false
		}
		return true
	})
	return id, err
}

// Runs lists every run of the state, newest first (see FindRuns).
func (s *Session) Runs() ([]*RunInfo, error) {
	runs, _, err := s.FindRuns(RunQuery{})
	return runs, err
}

// FindRuns lists the runs q selects, newest first; more reports that q's
// limit left some out. A run whose process died (the journal says
// running, no live process holds the run) is listed interrupted. With a
// database, the selection is a query reading a page of runs, not every
// run.
func (s *Session) FindRuns(q RunQuery) (runs []*RunInfo, more bool, err error) {
	store, where, err := s.openStore(s.namedStateDir())
	if err != nil {
		return nil, false, err
	}
	f := journal.RunFilter{Runbook: q.Runbook, Lock: q.Lock, States: journalStates(q.Status)}
	size := 200
	if q.Limit > 0 {
		size = q.Limit + 1
	}
	err = eachRun(store, f, size, func(st *journal.State) bool {
		ri := s.runInfo(store, where, st)
		if q.Status != "" && ri.State.State != q.Status {
			return true
		}
		if q.Limit > 0 && len(runs) == q.Limit {
			more = true
			return false
		}
		runs = append(runs, ri)
		return true
	})
	return runs, more, err
}

// latestRun is the newest run (unfinished only, when asked).
func latestRun(store store, where string, unfinished bool) (string, error) {
	var f journal.RunFilter
	if unfinished {
		f.NotStates = []string{journal.RunSucceeded, journal.RunRolledBack, journal.RunFailed}
	}
	id, err := firstRun(store, f, func(st *journal.State) bool { return !unfinished || st.Unfinished() })
	if id != "" || err != nil {
		return id, err
	}
	what := "run"
	if unfinished {
		what = "unfinished run"
	}
	return "", fmt.Errorf("no %s in %s", what, strings.TrimSuffix(where, string(filepath.Separator)))
}

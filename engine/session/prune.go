package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
)

// PruneOptions says which finished runs Prune removes.
type PruneOptions struct {
	// OlderThan: only runs that ended at least this long ago (0: any age).
	OlderThan time.Duration
	// Keep is how many of the newest runs of each runbook (whatever their
	// state) are kept.
	Keep int
	// DryRun lists what would be removed and removes nothing.
	DryRun bool
	// Now is the time ages are measured from (zero: time.Now).
	Now time.Time
}

// Prunable reports whether a run in state may be pruned: it succeeded or
// was rolled back. Failed (on_failure = continue), aborted, interrupted,
// running, rollback_failed and corrupt runs may still need a resume, a
// rollback or a look by hand: they are never pruned.
func Prunable(state string) bool {
	return state == journal.RunSucceeded || state == journal.RunRolledBack
}

// Prune removes the finished runs (Prunable) of the state directory that
// ended before opts.OlderThan and are not among the opts.Keep newest of
// their runbook (its name and directory). A run a live process holds, or
// that still holds a lock key, is kept. confirm, when set and there is
// something to remove, is shown the runs and must return true (false
// gives ErrCancelled). It returns the runs removed (with DryRun: those
// that would be), newest first.
func (s *Session) Prune(opts PruneOptions, confirm func([]*journal.State) (bool, error)) ([]*journal.State, error) {
	dir := s.namedStateDir()
	store, _, err := s.openStore(dir)
	if err != nil {
		return nil, err
	}
	cands, err := pruneCandidates(store, opts)
	if err != nil || opts.DryRun || len(cands) == 0 {
		return cands, err
	}
	if confirm != nil {
		ok, err := confirm(cands)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrCancelled
		}
	}
	var removed []*journal.State
	var errs []error
	for _, st := range cands {
		if err := pruneRun(store, dir, st.Meta.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, st)
	}
	return removed, errors.Join(errs...)
}

// pruneCandidates are the runs Prune would remove, newest first.
func pruneCandidates(store store, opts PruneOptions) ([]*journal.State, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ids, err := store.List() // newest first
	if err != nil {
		return nil, err
	}
	seen := map[[2]string]int{} // runs of each runbook (name, directory) so far
	var out []*journal.State
	for _, id := range ids {
		st, err := store.Load(id)
		if err != nil || st.Meta == nil {
			continue
		}
		rb := [2]string{st.Meta.Runbook, st.Meta.Dir}
		seen[rb]++
		if seen[rb] <= opts.Keep || !Prunable(st.State) || now.Sub(ended(st)) < opts.OlderThan {
			continue
		}
		if held, err := lockedBy(store, st); err != nil || held {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// ended is when the run ended: its last record.
func ended(st *journal.State) time.Time {
	if st.Updated.After(st.Meta.Started) {
		return st.Updated
	}
	return st.Meta.Started
}

// lockedBy reports whether a live process holds run st, or its lock key
// still names it.
func lockedBy(store store, st *journal.State) (bool, error) {
	ls, err := store.Status("run:" + st.Meta.ID)
	if err != nil || ls.Active {
		return true, err
	}
	if st.Meta.Lock == "" {
		return false, nil
	}
	ls, err = store.Status(st.Meta.Lock)
	return err != nil || ls.Holder.RunID == st.Meta.ID, err
}

// pruneRun removes run id's journal and its approvals in the state
// directory dir while holding the run, so that no resume or rollback works
// on it meanwhile.
func pruneRun(store store, dir, id string) error {
	var h held
	if err := lockRun(store, id, &h); err != nil {
		return fmt.Errorf("prune run %s: %w", id, err)
	}
	err := store.Remove(id)
	if err == nil {
		// Answers to its core.approve gates (cmd/runbook approve).
		err = os.RemoveAll(filepath.Join(dir, "approvals", id))
	}
	h.release(true)
	if err != nil {
		return fmt.Errorf("prune run %s: %w", id, err)
	}
	// The run's own lock file names no holder now; nothing takes it again.
	return store.RemoveLock("run:" + id)
}

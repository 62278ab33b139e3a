package journal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/internal/tick"
)

// Locks in the database are rows of runbook.locks held as leases: the
// holder's process refreshes the row's heartbeat every third of the lease,
// and a holder whose lease has run out counts as gone. A lease, not a
// session advisory lock: a row survives connection poolers (PgBouncer in
// transaction mode has no sessions), lets `runs` and `unlock` show who
// holds a key from any machine, and keeps naming an unfinished run after
// its process has ended, as a local lock file does. Times are the
// database server's, so the machines' clocks do not matter.
//
// A holder that stops heartbeating (killed, partitioned, paused) loses its
// key once its lease is over; the run can then be resumed elsewhere. If
// the old process comes back, its next journal record collides with the
// new holder's on (run_id, seq) and fails: it cannot write over the run.
//
// Columns: key; run_id and holder (the Holder as JSON) name the run that
// has the key (both empty: free); owner is a random token of the live
// process holding it ("" when none does, as after a process released an
// unfinished run); heartbeat_at and expires_at bound its lease.

// pgLock is a held lock row; a goroutine renews its lease until Release.
type pgLock struct {
	s     *PGStore
	key   string
	owner string
	who   Holder
	stop  chan struct{}
	done  sync.WaitGroup

	mu   sync.Mutex
	lost error // set when a renewal found the key taken over
}

// lockRow is a lock row as read.
type lockRow struct {
	runID   string
	holder  []byte
	owned   bool    // a process holds it (owner set)
	live    bool    // ... and its lease runs
	age     float64 // seconds since its last heartbeat
	present bool
}

const lockSelect = `SELECT run_id, holder, owner <> '', coalesce(expires_at > now(), false),
	coalesce(extract(epoch FROM now() - heartbeat_at), 0)::float8 FROM runbook.locks WHERE key = $1`

func readLock(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, key string, forUpdate bool) (lockRow, error) {
	sql := lockSelect
	if forUpdate {
		sql += " FOR UPDATE"
	}
	var r lockRow
	err := q.QueryRow(ctx, sql, key).Scan(&r.runID, &r.holder, &r.owned, &r.live, &r.age)
	if errors.Is(err, pgx.ErrNoRows) {
		return lockRow{}, nil
	}
	r.present = err == nil
	return r, err
}

// status is what row says about its holder.
func (s *PGStore) status(key string, r lockRow) LockStatus {
	var st LockStatus
	if len(r.holder) > 0 {
		if err := json.Unmarshal(r.holder, &st.Holder); err != nil {
			st.Unreadable = fmt.Errorf("%d bytes that are not a whole holder: %v", len(r.holder), err)
			st.Holder = Holder{}
		}
	}
	st.Holder.Key = key
	switch {
	case r.owned && r.live:
		st.Active = true
	case r.owned:
		st.Stale = fmt.Sprintf("last heartbeat from %s %s ago, lease %s", st.Holder.Host,
			(time.Duration(r.age * float64(time.Second))).Round(time.Second), s.lease)
	}
	return st
}

func (s *PGStore) lockFile(key string) string {
	return fmt.Sprintf("the row %s of runbook.locks in %s", ShellWord(key), s.where)
}

// Status reports who holds key, without taking it.
func (s *PGStore) Status(key string) (LockStatus, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	r, err := readLock(ctx, s.pool, key, false)
	if err != nil {
		return LockStatus{}, fmt.Errorf("lock %q: %w", key, err)
	}
	return s.status(key, r), nil
}

// Lock implements Store with the local store's rules (see
// LocalStore.Lock): a new run is refused while the holder's lease runs, or
// while the run it names is unfinished or unreadable; the run itself
// (resume, rollback) takes a lapsed holder's key over.
func (s *PGStore) Lock(key, runID string, who Holder) (Lock, error) {
	owner := newToken()
	who.RunID, who.Key = runID, key
	if who.Since.IsZero() {
		who.Since = time.Now().UTC()
	}
	who.Heartbeat = time.Now().UTC()
	hb, err := json.Marshal(&who)
	if err != nil {
		return nil, err
	}
	var le *LockedError
	err = s.retry(func(ctx context.Context) error {
		le = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO runbook.locks (key) VALUES ($1) ON CONFLICT DO NOTHING`, key); err != nil {
				return err
			}
			r, err := readLock(ctx, tx, key, true)
			if err != nil {
				return err
			}
			st := s.status(key, r)
			file := s.lockFile(key)
			if st.Active {
				le = &LockedError{Holder: st.Holder, Live: true, File: file, HolderUnreadable: st.Unreadable, Lease: s.lease}
				return nil
			}
			if st.Unreadable != nil {
				le = &LockedError{Holder: st.Holder, File: file, HolderUnreadable: st.Unreadable}
				return nil
			}
			// The previous holder's run is read in this transaction: a
			// second connection per Lock could exhaust the pool.
			if le = stillHeld(txLoader{s, ctx, tx}, st, runID, file); le != nil {
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE runbook.locks SET run_id = $2, holder = $3, owner = $4,
				heartbeat_at = now(), expires_at = now() + $5::interval WHERE key = $1`,
				key, runID, hb, owner, s.lease)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("lock %q in %s: %w", key, s.where, err)
	}
	if le != nil {
		return nil, le
	}
	l := &pgLock{s: s, key: key, owner: owner, who: who, stop: make(chan struct{})}
	l.done.Add(1)
	go l.renew(s.lease / 3)
	return l, nil
}

// txLoader loads runs through a transaction.
type txLoader struct {
	s   *PGStore
	ctx context.Context
	tx  pgx.Tx
}

func (l txLoader) Load(id string) (*State, error) {
	b, found, err := linesOf(l.ctx, l.tx, id)
	return l.s.replay(id, b, found, err)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// renew extends the lease every interval until Release. A renewal that
// finds the key taken over (its lease ran out meanwhile) stops.
func (l *pgLock) renew(interval time.Duration) {
	defer l.done.Done()
	tick.Every(l.stop, interval, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		defer cancel()
		tag, err := l.s.pool.Exec(ctx, `UPDATE runbook.locks SET heartbeat_at = now(), expires_at = now() + $3::interval,
			holder = jsonb_set(holder, '{heartbeat}', to_jsonb($4::text)) WHERE key = $1 AND owner = $2`,
			l.key, l.owner, l.s.lease, time.Now().UTC().Format(time.RFC3339Nano))
		if err == nil && tag.RowsAffected() == 0 {
			l.mu.Lock()
			l.lost = fmt.Errorf("lock %q: its lease ran out and another process took it", l.key)
			l.mu.Unlock()
			return false
		}
		return true
	})
}

// Release implements Lock: finished frees the key; otherwise the row keeps
// naming the unfinished run, with no process (owner and lease cleared).
func (l *pgLock) Release(finished bool) error {
	close(l.stop)
	l.done.Wait()
	err := l.s.retry(func(ctx context.Context) error {
		var err error
		if finished {
			_, err = l.s.pool.Exec(ctx, `DELETE FROM runbook.locks WHERE key = $1 AND owner = $2`, l.key, l.owner)
			return err
		}
		who := l.who
		who.PID, who.Heartbeat = 0, time.Time{}
		hb, err := json.Marshal(&who)
		if err != nil {
			return err
		}
		_, err = l.s.pool.Exec(ctx, `UPDATE runbook.locks SET holder = $3, owner = '', heartbeat_at = NULL, expires_at = NULL
			WHERE key = $1 AND owner = $2`, l.key, l.owner, hb)
		return err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		err = l.lost
	}
	return err
}

// Unlock releases key whatever run holds it, unless its holder's lease
// runs (a *LockedError with Live set). It returns the holder it removed.
func (s *PGStore) Unlock(key string) (Holder, error) {
	var h Holder
	var le *LockedError
	err := s.retry(func(ctx context.Context) error {
		le = nil
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			r, err := readLock(ctx, tx, key, true)
			if err != nil || !r.present {
				return err
			}
			st := s.status(key, r)
			if st.Active {
				le = &LockedError{Holder: st.Holder, Live: true, File: s.lockFile(key), HolderUnreadable: st.Unreadable, Lease: s.lease}
				return nil
			}
			h = st.Holder
			_, err = tx.Exec(ctx, `DELETE FROM runbook.locks WHERE key = $1`, key)
			return err
		})
	})
	if err != nil {
		return Holder{}, fmt.Errorf("unlock %q in %s: %w", key, s.where, err)
	}
	if le != nil {
		return Holder{}, le
	}
	return h, nil
}

// RemoveLock deletes key's row when it names no holder and no process has
// it; a held key is left as it is.
func (s *PGStore) RemoveLock(key string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM runbook.locks WHERE key = $1 AND run_id = '' AND NOT (owner <> '' AND coalesce(expires_at > now(), false))`, key)
	return err
}

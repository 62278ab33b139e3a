package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m)) }

// adminStore is what both stores offer beyond Store.
type adminStore interface {
	Store
	Status(key string) (LockStatus, error)
	Unlock(key string) (Holder, error)
	Remove(id string) error
	RemoveLock(key string) error
}

// newPG returns a store on a fresh, migrated database and its URL.
func newPG(t *testing.T, opts ...PGOption) (*PGStore, string) {
	t.Helper()
	url := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	s, err := OpenPostgres(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, url
}

// eachStore runs f against a local store and a PostgreSQL one.
func eachStore(t *testing.T, f func(t *testing.T, s adminStore)) {
	t.Run("local", func(t *testing.T) { f(t, NewLocal(t.TempDir())) })
	t.Run("postgres", func(t *testing.T) {
		s, _ := newPG(t)
		f(t, s)
	})
}

// The Store contract, the same for both stores: create, append from many
// goroutines, load, list, resolve, reopen and continue.
func TestStoreContract(t *testing.T) {
	eachStore(t, func(t *testing.T, s adminStore) {
		if ids, err := s.List(); err != nil || len(ids) != 0 {
			t.Fatalf("empty store lists %v, %v", ids, err)
		}
		if _, err := s.Load("NOPE"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load of a missing run: %v, want fs.ErrNotExist", err)
		}
		var metas []*Meta
		for i := range 2 {
			m := &Meta{Runbook: "rb", Lock: "db", Started: time.Now().UTC()}
			if i == 1 {
				time.Sleep(2 * time.Millisecond) // a later ULID
			}
			j, err := s.Create(m)
			if err != nil {
				t.Fatal(err)
			}
			metas = append(metas, m)
			var wg sync.WaitGroup
			for k := range 30 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					addr := fmt.Sprintf("s%d", k)
					if err := j.Append(&Record{Type: RecAttemptStarted, Step: addr, Attempt: 1}); err != nil {
						t.Error(err)
					}
					if err := j.AppendNoWait(&Record{Type: RecCheckpoint, Step: addr, Attempt: 1, Checkpoint: &Blob{Data: []byte("cp")}}); err != nil {
						t.Error(err)
					}
					if err := j.Append(&Record{Type: RecStepSucceeded, Step: addr, Attempt: 1}); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if err := j.AppendNoWait(&Record{Type: RecRunState, State: RunInterrupted}); err != nil {
				t.Fatal(err)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{metas[1].ID, metas[0].ID}, ids); diff != "" {
			t.Fatalf("List, newest first (-want +got):\n%s", diff)
		}
		st, err := s.Load(metas[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Seq != 92 || len(st.Steps) != 30 || st.State != RunInterrupted || st.Meta.Lock != "db" || st.Warning != "" {
			t.Fatalf("loaded seq %d, %d steps, state %s, meta %+v, warning %q", st.Seq, len(st.Steps), st.State, st.Meta, st.Warning)
		}
		for _, x := range st.Steps {
			if x.State != StepSucceeded {
				t.Errorf("%s: %s", x.Address, x.State)
			}
		}
		// Resolve: exact, lower-case prefix, ambiguous, missing.
		if id, err := s.Resolve(strings.ToLower(metas[0].ID)); err != nil || id != metas[0].ID {
			t.Errorf("Resolve(exact) = %q, %v", id, err)
		}
		common := 0
		for common < len(metas[0].ID) && metas[0].ID[common] == metas[1].ID[common] {
			common++
		}
		if id, err := s.Resolve(metas[1].ID[:common+1]); err != nil || id != metas[1].ID {
			t.Errorf("Resolve(unique prefix) = %q, %v", id, err)
		}
		if _, err := s.Resolve(metas[1].ID[:common]); err == nil || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("Resolve(shared prefix) = %v, want ambiguous", err)
		}
		if _, err := s.Resolve("ZZZZ"); err == nil || !strings.Contains(err.Error(), `no run "ZZZZ"`) {
			t.Errorf("Resolve(missing) = %v", err)
		}
		// Reopen and continue the sequence.
		j, st, err := s.Open(metas[0].ID)
		if err != nil || st.Seq != 92 || st.Warning != "" {
			t.Fatalf("Open: %+v, %v", st, err)
		}
		if err := j.Append(&Record{Type: RecRunResumed}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		if st, err = s.Load(metas[0].ID); err != nil || st.Seq != 93 || st.State != RunRunning || len(st.Resumes) != 1 {
			t.Fatalf("after resume: %+v, %v", st, err)
		}
		// Remove.
		if err := s.Remove(metas[1].ID); err != nil {
			t.Fatal(err)
		}
		if ids, _ := s.List(); len(ids) != 1 || ids[0] != metas[0].ID {
			t.Fatalf("after Remove: %v", ids)
		}
	})
}

// The lock contract, the same for both stores (see TestLock and
// TestLockFailsClosed for the local one's details).
func TestLockContract(t *testing.T) {
	eachStore(t, func(t *testing.T, s adminStore) {
		m1 := &Meta{Lock: "k"}
		j, err := s.Create(m1)
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		l1, err := s.Lock("k", m1.ID, Holder{User: "u", Host: "h1", PID: 1})
		if err != nil {
			t.Fatal(err)
		}
		var le *LockedError
		_, err = s.Lock("k", "OTHER", Holder{})
		if !errors.As(err, &le) || !le.Live || le.Holder.RunID != m1.ID || le.Holder.User != "u" {
			t.Fatalf("want a live lock error naming %s, got %v", m1.ID, err)
		}
		if !strings.Contains(err.Error(), "which is running: wait for it to end") {
			t.Errorf("message: %v", err)
		}
		if _, err := s.Unlock("k"); !errors.As(err, &le) || !le.Live {
			t.Fatalf("unlock of a live holder: %v", err)
		}
		if st, err := s.Status("k"); err != nil || !st.Active || st.Holder.RunID != m1.ID {
			t.Fatalf("status = %+v, %v", st, err)
		}
		if l, err := s.Lock("k2", "OTHER", Holder{}); err != nil {
			t.Fatalf("another key: %v", err)
		} else {
			l.Release(true)
		}
		// Process gone, run unfinished: a new run is refused, the run may take over.
		if err := l1.Release(false); err != nil {
			t.Fatal(err)
		}
		_, err = s.Lock("k", "OTHER", Holder{})
		if !errors.As(err, &le) || le.Live || le.Holder.RunID != m1.ID {
			t.Fatalf("want unfinished lock error, got %v", err)
		}
		for _, want := range []string{"held by unfinished run " + m1.ID, "runbook resume " + m1.ID, "runbook unlock k"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message lacks %q: %v", want, err)
			}
		}
		if st, err := s.Status("k"); err != nil || st.Active || st.Holder.RunID != m1.ID || st.Holder.PID != 0 {
			t.Fatalf("status after release = %+v, %v", st, err)
		}
		l1, err = s.Lock("k", m1.ID, Holder{})
		if err != nil {
			t.Fatalf("takeover by the run itself: %v", err)
		}
		l1.Release(false)
		// Unlock frees it for new runs and names who held it.
		if h, err := s.Unlock("k"); err != nil || h.RunID != m1.ID {
			t.Fatalf("unlock = %+v, %v", h, err)
		}
		l, err := s.Lock("k", "OTHER", Holder{})
		if err != nil {
			t.Fatalf("after unlock: %v", err)
		}
		l.Release(true)
		// A finished holder frees the key.
		l1, _ = s.Lock("k", m1.ID, Holder{})
		l1.Release(false)
		j, _, err = s.Open(m1.ID)
		if err != nil {
			t.Fatal(err)
		}
		j.Append(&Record{Type: RecRunState, State: RunSucceeded})
		j.Close()
		if l, err := s.Lock("k", "NEXT", Holder{}); err != nil {
			t.Fatalf("after the holder finished: %v", err)
		} else {
			l.Release(true)
		}
		if st, err := s.Status("k"); err != nil || st.Holder.RunID != "" {
			t.Fatalf("status after a finished release = %+v, %v", st, err)
		}
		if err := s.RemoveLock("k"); err != nil {
			t.Fatal(err)
		}
	})
}

// A damaged record in the database is found by its checksum, as on disk:
// before the last it makes the run corrupt (listed, unopenable, its key
// held); as the last it is a torn tail, dropped on Open.
func TestPGDamagedRecords(t *testing.T) {
	s, _ := newPG(t)
	ctx := context.Background()
	mk := func() *Meta {
		m := &Meta{Lock: "db"}
		j, err := s.Create(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []string{"a", "b"} {
			j.Append(&Record{Type: RecAttemptStarted, Step: step, Attempt: 1})
		}
		j.Close()
		return m
	}
	spoil := func(m *Meta, seq int) {
		if _, err := s.pool.Exec(ctx, `UPDATE runbook.records SET line = replace(line, '"step"', '"stex"') WHERE run_id = $1 AND seq = $2`, m.ID, seq); err != nil {
			t.Fatal(err)
		}
	}
	m := mk()
	spoil(m, 2)
	st, err := s.Load(m.ID)
	if err != nil || st.State != RunCorrupt || st.Corrupt == nil || !st.Unfinished() {
		t.Fatalf("middle damage: %+v, %v", st, err)
	}
	var ce *CorruptError
	if _, _, err := s.Open(m.ID); !errors.As(err, &ce) {
		t.Fatalf("Open of a corrupt run: %v", err)
	}
	l, err := s.Lock("db", m.ID, Holder{})
	if err != nil {
		t.Fatal(err)
	}
	l.Release(false)
	var le *LockedError
	if _, err := s.Lock("db", "OTHER", Holder{}); !errors.As(err, &le) || le.Unreadable == nil {
		t.Fatalf("a corrupt holder keeps its key: %v", err)
	}

	m = mk()
	spoil(m, 3)
	j, st, err := s.Open(m.ID)
	if err != nil || st.Warning == "" || st.Seq != 2 {
		t.Fatalf("torn tail: %+v, %v", st, err)
	}
	if err := j.Append(&Record{Type: RecAttemptStarted, Step: "b", Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if st, err = s.Load(m.ID); err != nil || st.Warning != "" || st.Seq != 3 || st.Steps["b"].Attempt != 2 {
		t.Fatalf("after append: %+v, %v", st, err)
	}
}

// Concurrent Appends share one INSERT: far fewer commits than records.
func TestPGGroupCommit(t *testing.T) {
	s, _ := newPG(t)
	j, err := s.Create(&Meta{})
	if err != nil {
		t.Fatal(err)
	}
	l := j.(*Log)
	release := make(chan struct{})
	first := true
	l.beforeSync = func() {
		if first {
			first = false
			<-release
		}
	}
	const n = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := j.Append(&Record{Type: RecAttemptStarted, Step: "s0", Attempt: 1}); err != nil {
			t.Error(err)
		}
	}()
	for l.Seq() < 2 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.Append(&Record{Type: RecAttemptStarted, Step: fmt.Sprintf("s%d", i), Attempt: 1}); err != nil {
				t.Error(err)
			}
		}()
	}
	for l.Seq() < n+1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	l.mu.Lock()
	flushes := l.syncs
	l.mu.Unlock()
	if flushes != 2 {
		t.Errorf("%d commits for %d Appends, want 2 (the first, then the rest together)", flushes, n)
	}
	j.Close()
	var rows int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM runbook.records`).Scan(&rows); err != nil || rows != n+1 {
		t.Fatalf("%d rows, %v", rows, err)
	}
}

// A holder that stops renewing its lease (its process was killed) keeps
// the key until the lease is over; then its run can be taken over, and the
// old holder cannot write over the new one.
func TestPGLeaseTakeover(t *testing.T) {
	s, url := newPG(t, WithLease(900*time.Millisecond))
	m := &Meta{Lock: "db"}
	j, err := s.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock("db", m.ID, Holder{Host: "machine-a", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	// A second machine: its own pool on the same database.
	other, err := OpenPostgres(context.Background(), url, WithLease(900*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	time.Sleep(1200 * time.Millisecond) // past the lease: renewals keep it
	var le *LockedError
	for _, who := range []string{m.ID, "NEW"} {
		if _, err := other.Lock("db", who, Holder{}); !errors.As(err, &le) || !le.Live || !strings.Contains(err.Error(), "the lock is stale 900ms after its last heartbeat") {
			t.Fatalf("a live holder's key taken by %s: %v", who, err)
		}
	}
	// Kill: renewals stop, nothing is released.
	pl := l.(*pgLock)
	close(pl.stop)
	pl.done.Wait()
	if _, err := other.Lock("db", m.ID, Holder{}); !errors.As(err, &le) || !le.Live {
		t.Fatalf("taken over within the lease: %v", err)
	}
	time.Sleep(time.Second)
	st, err := other.Status("db")
	if err != nil || st.Active || !strings.Contains(st.Stale, "last heartbeat from machine-a") {
		t.Fatalf("status after the lease = %+v, %v", st, err)
	}
	if _, err := other.Lock("db", "NEW", Holder{}); !errors.As(err, &le) || le.Live || !strings.Contains(err.Error(), "stale: last heartbeat") {
		t.Fatalf("a new run took an unfinished run's key: %v", err)
	}
	l2, err := other.Lock("db", m.ID, Holder{Host: "machine-b"})
	if err != nil {
		t.Fatalf("resume's takeover: %v", err)
	}
	j2, _, err := other.Open(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.Append(&Record{Type: RecRunResumed}); err != nil {
		t.Fatal(err)
	}
	// The old process wakes up: its record collides, its release fails.
	if err := j.Append(&Record{Type: RecAttemptStarted, Step: "late", Attempt: 1}); err == nil || !strings.Contains(err.Error(), "written by another process") {
		t.Fatalf("the old holder's append: %v", err)
	}
	pl.stop = make(chan struct{})
	if err := l.Release(true); err != nil {
		t.Fatal(err) // owner no longer matches: nothing happens
	}
	if st, _ := other.Status("db"); !st.Active || st.Holder.Host != "machine-b" {
		t.Fatalf("the old holder's release touched the new lock: %+v", st)
	}
	j2.Close()
	l2.Release(true)
}

// Bad input: a server that does not answer, a database without the
// schema, a schema from a newer version.
func TestOpenPostgresErrors(t *testing.T) {
	ctx := context.Background()
	port := testenv.FreePort(t)
	down := fmt.Sprintf("postgres://u:s3cret-pw@127.0.0.1:%d/state?connect_timeout=2", port)
	var se *StateError
	_, err := OpenPostgres(ctx, down)
	if !errors.As(err, &se) || se.Kind != "unreachable" || !strings.Contains(err.Error(), "check that PostgreSQL runs") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable: %v", err)
	}
	if _, err := Migrate(ctx, down); !errors.As(err, &se) || se.Kind != "unreachable" {
		t.Fatalf("migrate, unreachable: %v", err)
	}

	url := testenv.Postgres(t)
	_, err = OpenPostgres(ctx, url)
	if !errors.As(err, &se) || se.Kind != "schema_missing" || !strings.Contains(err.Error(), "runbook state migrate") {
		t.Fatalf("no schema: %v", err)
	}
	res, err := Migrate(ctx, url)
	if err != nil || res.From != 0 || res.To != SchemaVersion || len(res.River) == 0 {
		t.Fatalf("migrate = %+v, %v", res, err)
	}
	res, err = Migrate(ctx, url)
	if err != nil || res.From != SchemaVersion || res.To != SchemaVersion || len(res.River) != 0 {
		t.Fatalf("second migrate = %+v, %v (want nothing to do)", res, err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO runbook.schema_version (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	_, err = OpenPostgres(ctx, url)
	if !errors.As(err, &se) || se.Kind != "schema_newer" || !strings.Contains(err.Error(), "upgrade runbook") {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := Migrate(ctx, url); !errors.As(err, &se) || se.Kind != "schema_newer" {
		t.Fatalf("migrate of a newer schema: %v", err)
	}
	_, err = OpenPostgres(ctx, testenv.PostgresBadPasswordURL(t))
	if !errors.As(err, &se) || se.Kind != "auth" {
		t.Fatalf("bad password: %v", err)
	}
}

// Concurrent migrations from several machines end in one schema.
func TestMigrateConcurrent(t *testing.T) {
	url := testenv.Postgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Migrate(context.Background(), url)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// AppendTx commits a record with the caller's transaction, or not at all.
func TestPGAppendTx(t *testing.T) {
	s, _ := newPG(t)
	ctx := context.Background()
	m := &Meta{}
	j, err := s.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	j.Append(&Record{Type: RecAttemptStarted, Step: "a", Attempt: 1})
	j.Close()
	for _, commit := range []bool{false, true} {
		tx, err := s.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AppendTx(ctx, tx, m.ID, &Record{Type: RecRunState, State: RunSucceeded}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Load(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: RunRunning, true: RunSucceeded}[commit]; st.State != want || st.Seq != map[bool]int64{false: 2, true: 3}[commit] {
			t.Fatalf("commit=%v: state %s seq %d", commit, st.State, st.Seq)
		}
	}
	tx, _ := s.Pool().Begin(ctx)
	defer tx.Rollback(ctx)
	if err := s.AppendTx(ctx, tx, "NOPE", &Record{Type: RecRunState}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AppendTx to a missing run: %v", err)
	}
}

// Appends survive their connections being cut (a server restart, a
// failover): the write is retried on a new connection, and a retry of a
// write that did commit is recognised.
func TestPGAppendSurvivesLostConnections(t *testing.T) {
	s, url := newPG(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	m := &Meta{}
	j, err := s.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(&Record{Type: RecAttemptStarted, Step: fmt.Sprint("s", i), Attempt: 1}); err != nil {
			t.Fatalf("append %d after the connections were cut: %v", i, err)
		}
	}
	j.Close()
	if st, err := s.Load(m.ID); err != nil || st.Seq != 4 || len(st.Steps) != 3 {
		t.Fatalf("after: %+v, %v", st, err)
	}
	// A retried write whose first try committed.
	w := &pgWriter{s: s, id: m.ID}
	line, _ := appendLine(nil, &Record{Seq: 5, Type: RecRunState, State: RunSucceeded})
	if err := insertLines(ctx, s.pool, m.ID, 5, line); err != nil {
		t.Fatal(err)
	}
	tries := 0
	err = s.retry(func(ctx context.Context) error {
		tries++
		if tries == 1 {
			return &pgconn.PgError{Code: "57P01"} // the answer was lost
		}
		return nil
	})
	if err != nil || tries != 2 {
		t.Fatalf("retry of a transient error: %d tries, %v", tries, err)
	}
	if err := w.write(line, 5, false); err == nil || !strings.Contains(err.Error(), "written by another process") {
		t.Fatalf("a first write over an existing record: %v", err)
	}
}

// Many Locks at once, each reading the previous holder's run, on a small
// pool: none waits for a second connection (a Lock reads in its own
// transaction), so none hangs.
func TestPGLocksOnASmallPool(t *testing.T) {
	s, _ := newPG(t, WithMaxConns(2), WithTimeout(10*time.Second))
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		m := &Meta{}
		j, err := s.Create(m)
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		key := fmt.Sprint("k", i)
		l, err := s.Lock(key, m.ID, Holder{})
		if err != nil {
			t.Fatal(err)
		}
		l.Release(false) // the unfinished run keeps the key
		wg.Add(1)
		go func() {
			defer wg.Done()
			var le *LockedError
			if _, err := s.Lock(key, "OTHER", Holder{}); !errors.As(err, &le) || le.Holder.RunID != m.ID {
				t.Errorf("%s: %v", key, err)
			}
		}()
	}
	wg.Wait()
}

// CopyRuns copies runs record by record both ways, idempotently: a run
// that went on is extended, one whose records differ is left and named.
func TestCopyRuns(t *testing.T) {
	db, _ := newPG(t)
	local := NewLocal(t.TempDir())
	m := &Meta{Runbook: "rb", Lock: "k"}
	j, err := local.Create(m)
	if err != nil {
		t.Fatal(err)
	}
	j.Append(&Record{Type: RecAttemptStarted, Step: "a", Attempt: 1, Inputs: &Value{Type: json.RawMessage(`"string"`), Value: json.RawMessage(`null`), Sealed: []byte("sealed-bytes")}})
	j.Close()
	check := func(dst, src Store, want CopyReport) {
		t.Helper()
		rep, err := CopyRuns(dst, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&want, rep); diff != "" {
			t.Fatalf("report (-want +got):\n%s", diff)
		}
	}
	check(db, local, CopyReport{Copied: []string{m.ID}})
	check(db, local, CopyReport{UpToDate: []string{m.ID}})
	j, _, _ = local.Open(m.ID)
	j.Append(&Record{Type: RecStepSucceeded, Step: "a", Attempt: 1})
	j.Close()
	check(db, local, CopyReport{Extended: []string{m.ID}})
	a, _ := local.rawLines(m.ID)
	b, _ := db.rawLines(m.ID)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("records differ (-local +db):\n%s", diff)
	}
	st, err := db.Load(m.ID)
	if err != nil || st.Steps["a"].State != StepSucceeded || st.Meta.Lock != "k" {
		t.Fatalf("copied run: %+v, %v", st, err)
	}
	back := NewLocal(t.TempDir())
	check(back, db, CopyReport{Copied: []string{m.ID}})
	// Both went on differently: left as they are, named.
	for _, s := range []Store{local, db} {
		j, _, _ := s.Open(m.ID)
		j.Append(&Record{Type: RecRunState, State: fmt.Sprintf("%T", s)})
		j.Close()
	}
	if _, err := CopyRuns(db, local, nil); err == nil || !strings.Contains(err.Error(), "run "+m.ID+" differs") {
		t.Fatalf("diverged copy: %v", err)
	}
}

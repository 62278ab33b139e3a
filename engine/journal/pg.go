package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGStore keeps runs and locks in a PostgreSQL database (the `runbook`
// schema, created by Migrate), for teams that share one state and for
// workers on many machines.
//
// Each journal record is stored as the very line a local journal holds
// (checksum, space, JSON; see log.go) in runbook.records, one row per
// record keyed by (run_id, seq): sealed values stay sealed, the state key
// never reaches the database, and the same reader checks the checksums.
// Appends are grouped as on disk: concurrent Appends to one run share one
// INSERT, which is one commit. The (run_id, seq) key also fences a writer
// that lost its lease: its next record collides with the new holder's.
//
// Locks are rows of runbook.locks held as leases (see pglock.go).
type PGStore struct {
	pool  *pgxpool.Pool
	where string // the URL without its password, for messages
	lease time.Duration
	// opTimeout bounds each statement; writes retry transient failures
	// (a restarted server) until it passes.
	opTimeout time.Duration
}

var _ Store = (*PGStore)(nil)

// PGOption configures OpenPostgres.
type PGOption func(*pgOptions)

type pgOptions struct {
	lease     time.Duration
	opTimeout time.Duration
	maxConns  int32
}

// WithLease sets how long a lock holder counts as alive after its last
// heartbeat (default DefaultPGLease); holders refresh it every third of
// the lease. A dead holder's run can be resumed once it has passed.
func WithLease(d time.Duration) PGOption { return func(o *pgOptions) { o.lease = d } }

// WithTimeout bounds each database call (default 30 s); a write that
// fails on a lost connection is retried until it passes.
func WithTimeout(d time.Duration) PGOption { return func(o *pgOptions) { o.opTimeout = d } }

// WithMaxConns sets the pool's size (default: pgxpool's, or the URL's
// pool_max_conns).
func WithMaxConns(n int32) PGOption { return func(o *pgOptions) { o.maxConns = n } }

// DefaultPGLease is how long a database lock holder counts as alive after
// its last heartbeat. Lease times are the database server's clock, so
// machines whose clocks differ agree on them; it can thus be shorter than
// the local store's DefaultLease.
const DefaultPGLease = 30 * time.Second

// IsPostgresURL reports whether a state spec (-state, RUNBOOK_STATE) names
// a PostgreSQL database rather than a directory.
func IsPostgresURL(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Pool is the store's connection pool: a caller may run its own
// statements (a job queue sharing the database) and pass a pgx.Tx of it
// to AppendTx.
func (s *PGStore) Pool() *pgxpool.Pool { return s.pool }

// Where is the database the store uses, without its password.
func (s *PGStore) Where() string { return s.where }

// Lease is how long a lock holder counts as alive after its heartbeat.
func (s *PGStore) Lease() time.Duration { return s.lease }

// Close closes the pool. Journals and locks must be closed first.
func (s *PGStore) Close() { s.pool.Close() }

func (s *PGStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opTimeout)
}

// Location names the run in the database.
func (s *PGStore) Location(id string) string { return s.where + " (run " + id + ")" }

// Create implements Store: the run's row and its run_started record are
// written in one transaction.
func (s *PGStore) Create(meta *Meta) (Journal, error) {
	if meta.ID == "" {
		meta.ID = NewID()
	}
	r := &Record{Seq: 1, Type: RecRunStarted, Meta: meta, Time: meta.Started}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	line, err := appendLine(nil, r)
	if err != nil {
		return nil, fmt.Errorf("encode journal record: %w", err)
	}
	tries := 0
	err = s.retry(func(ctx context.Context) error {
		tries++
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO runbook.runs (id, runbook, lock_key, started) VALUES ($1, $2, $3, $4)`,
			meta.ID, meta.Runbook, meta.Lock, r.Time); err != nil {
			if tries > 1 && isUniqueViolation(err) {
				// An earlier try committed but its answer was lost.
				if same, cerr := s.stored(ctx, meta.ID, 1, line); cerr == nil && same {
					return nil
				}
			}
			return err
		}
		if err := insertLines(ctx, tx, meta.ID, 1, line); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("create run %s in %s: %w", meta.ID, s.where, err)
	}
	return newLog(&pgWriter{s: s, id: meta.ID}, 1), nil
}

// lines are a run's stored records in order, each ending in a newline, as
// a local journal holds them; found is false when the run does not exist.
func (s *PGStore) lines(id string) (b []byte, found bool, err error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return linesOf(ctx, s.pool, id)
}

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}

func linesOf(ctx context.Context, q querier, id string) (b []byte, found bool, err error) {
	var buf bytes.Buffer
	rows, err := q.Query(ctx, `SELECT line FROM runbook.records WHERE run_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, false, err
	}
	var line []byte
	_, err = pgx.ForEachRow(rows, []any{&line}, func() error {
		found = true
		buf.Write(line)
		buf.WriteByte('\n')
		return nil
	})
	return buf.Bytes(), found, err
}

// read replays run id's records. A corrupt journal is no error: see Load.
func (s *PGStore) read(id string) (*State, error) {
	b, found, err := s.lines(id)
	return s.replay(id, b, found, err)
}

// replay is the State of run id from its lines (see lines).
func (s *PGStore) replay(id string, b []byte, found bool, err error) (*State, error) {
	if err != nil {
		return nil, fmt.Errorf("run %s: read journal from %s: %w", id, s.where, err)
	}
	if !found {
		return nil, &notFoundError{id: id, dir: s.where}
	}
	st, _, err := replayJournal(id, bytes.NewReader(b))
	return st, err
}

// Load implements Store (see LocalStore.Load).
func (s *PGStore) Load(id string) (*State, error) { return s.read(id) }

// Open implements Store (see LocalStore.Open): a last record that does not
// check out is deleted before appending; a corrupt run is refused.
func (s *PGStore) Open(id string) (Journal, *State, error) {
	st, err := s.read(id)
	if err != nil {
		return nil, nil, err
	}
	if st.Corrupt != nil {
		return nil, st, fmt.Errorf("%w: it can be neither resumed nor rolled back; check what it did and undo that by hand", st.Corrupt)
	}
	if st.Warning != "" {
		ctx, cancel := s.ctx()
		defer cancel()
		if _, err := s.pool.Exec(ctx, `DELETE FROM runbook.records WHERE run_id = $1 AND seq > $2`, id, st.Seq); err != nil {
			return nil, nil, fmt.Errorf("drop the journal's torn tail: %w", err)
		}
	}
	return newLog(&pgWriter{s: s, id: id}, st.Seq), st, nil
}

// List implements Store.
func (s *PGStore) List() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id FROM runbook.runs ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.where, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.where, err)
	}
	return ids, nil
}

// Resolve implements Store.
func (s *PGStore) Resolve(prefix string) (string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	up := strings.ToUpper(prefix)
	rows, err := s.pool.Query(ctx, `SELECT id FROM runbook.runs WHERE left(id, length($1)) = $1 ORDER BY id DESC LIMIT 20`, up)
	if err != nil {
		return "", fmt.Errorf("find run %q in %s: %w", prefix, s.where, err)
	}
	match, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("find run %q in %s: %w", prefix, s.where, err)
	}
	return resolveAmong(prefix, s.where, match)
}

// Remove deletes run id and its records (pruning). The caller makes sure
// no process works on the run.
func (s *PGStore) Remove(id string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM runbook.runs WHERE id = $1`, id)
	return err
}

// AppendTx appends r to run runID inside the caller's transaction tx (a
// pgx.Tx of Pool(), or of any connection to the same database), so that
// the record is committed together with what else tx does, such as a job
// queue marking the job that ran the run complete. r gets the run's next
// sequence number; it is durable once tx commits, and is gone if tx rolls
// back.
//
// The run's Journal must not have records waiting meanwhile: Close it
// first (Close makes what it queued durable). A record appended by a
// Journal or another AppendTx at the same time collides on the run's
// (run_id, seq) key and one of the two fails.
func (s *PGStore) AppendTx(ctx context.Context, tx pgx.Tx, runID string, r *Record) error {
	var last int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM runbook.records WHERE run_id = $1`, runID).Scan(&last); err != nil {
		return fmt.Errorf("run %s: %w", runID, err)
	}
	if last == 0 {
		return &notFoundError{id: runID, dir: s.where}
	}
	r.Seq = last + 1
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	line, err := appendLine(nil, r)
	if err != nil {
		return fmt.Errorf("encode journal record: %w", err)
	}
	if err := insertLines(ctx, tx, runID, r.Seq, line); err != nil {
		return fmt.Errorf("run %s: append record %d: %w", runID, r.Seq, err)
	}
	return nil
}

// insertLines stores buf's lines (each ending in a newline) as the records
// first, first+1, ... of run id, in one statement.
func insertLines(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, id string, first int64, buf []byte) error {
	var seqs []int64
	var lines []string
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf) - 1
		}
		seqs = append(seqs, first+int64(len(seqs)))
		lines = append(lines, string(buf[:i]))
		buf = buf[i+1:]
	}
	_, err := db.Exec(ctx, `INSERT INTO runbook.records (run_id, seq, line) SELECT $1, s, l FROM unnest($2::bigint[], $3::text[]) AS t(s, l)`,
		id, seqs, lines)
	return err
}

// pgWriter makes a Log's flushes durable in the database: one INSERT (one
// commit) per flush, however many records it carries.
type pgWriter struct {
	s  *PGStore
	id string
}

func (w *pgWriter) write(buf []byte, first int64, _ bool) error {
	tries := 0
	return w.s.retry(func(ctx context.Context) error {
		tries++
		err := insertLines(ctx, w.s.pool, w.id, first, buf)
		if tries > 1 && isUniqueViolation(err) {
			// An earlier try committed but its answer was lost: the rows
			// there must be these records.
			if same, cerr := w.s.stored(ctx, w.id, first, buf); cerr == nil && same {
				return nil
			}
		}
		if isUniqueViolation(err) {
			return fmt.Errorf("run %s: record %d was written by another process (this one lost its lock, or the run is worked on twice): %w", w.id, first, err)
		}
		return err
	})
}

func (w *pgWriter) close() error { return nil }

// stored reports whether the records from first on are buf's lines.
func (s *PGStore) stored(ctx context.Context, id string, first int64, buf []byte) (bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT line FROM runbook.records WHERE run_id = $1 AND seq >= $2 ORDER BY seq`, id, first)
	if err != nil {
		return false, err
	}
	var got bytes.Buffer
	var line []byte
	if _, err := pgx.ForEachRow(rows, []any{&line}, func() error {
		got.Write(line)
		got.WriteByte('\n')
		return nil
	}); err != nil {
		return false, err
	}
	return bytes.Equal(got.Bytes(), buf), nil
}

// retry runs f until it succeeds, fails for good, or the store's timeout
// has passed since the first try: a lost connection (the server restarted,
// a failover) is retried with a growing pause.
func (s *PGStore) retry(f func(ctx context.Context) error) error {
	deadline := time.Now().Add(s.opTimeout)
	pause := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := f(ctx)
		cancel()
		if err == nil || !transient(err) || time.Now().Add(pause).After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 2*time.Second)
	}
}

// transient reports whether err is a lost or refused connection, or a
// server shutting down or starting: worth another try.
func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, cannot connect now
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnErr(err)
}

// isConnErr matches the errors a dropped connection gives.
func isConnErr(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "unexpected EOF", "conn closed", "closed pool", "EOF"} {
		if strings.Contains(msg, s) {
			return s != "closed pool"
		}
	}
	return false
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

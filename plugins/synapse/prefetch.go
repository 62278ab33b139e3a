package synapse

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/jackc/pgx/v5"
)

// The largest Synapse reads (devices, access tokens, refresh tokens) run
// on two more connections, in the snapshot of the read transaction
// (pg_export_snapshot, SET TRANSACTION SNAPSHOT: the very same rows),
// while the first connection reads the users, threepids and external ids
// and the mapping goes on. One reader goroutine reads every device into
// an index, then decodes the plain access tokens into structs and hands
// them over in chunks through a bounded channel, so it stays at most
// prefetchChunks chunks ahead of the mapping; another does the same with
// the refresh pairs. The two connections need two more slots of the
// Synapse server's max_connections.

const (
	prefetchChunkRows = 1024
	prefetchChunks    = 32
)

// snapshotID is what pg_export_snapshot returns (e.g. 00000003-0000001B-1).
var snapshotID = regexp.MustCompile(`^[0-9A-F]+(-[0-9A-F]+)+$`)

// exportSnapshot exports the snapshot of the read transaction.
func exportSnapshot(ctx context.Context, tx pgx.Tx) (string, error) {
	var id string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&id); err != nil {
		return "", fmt.Errorf("export the snapshot: %w", err)
	}
	if !snapshotID.MatchString(id) {
		return "", fmt.Errorf("export the snapshot: unexpected id %q", id)
	}
	return id, nil
}

// importSnapshot starts on conn a read-only transaction in snapshot id.
func importSnapshot(ctx context.Context, conn *pgx.Conn, id string) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	for _, s := range []string{"SET TRANSACTION SNAPSHOT '" + id + "'", "SET LOCAL work_mem = '64MB'"} {
		if _, err := tx.Exec(ctx, s); err != nil {
			_ = tx.Rollback(context.Background())
			return nil, err
		}
	}
	return tx, nil
}

// stream is one prefetched query: chunks of decoded rows, then err.
type stream[T any] struct {
	table string
	query string
	scan  func(pgx.Rows, *T) error
	// Once ready is closed, resolve is called on each chunk before it is
	// handed over (it looks up the rows' users, moving that work off the
	// mapping goroutine too).
	ready   <-chan struct{}
	resolve func([]T)
	ch      chan []T
	err     error // written before ch is closed
}

func newStream[T any](table, query string, scan func(pgx.Rows, *T) error, ready <-chan struct{}, resolve func([]T)) *stream[T] {
	return &stream[T]{table: table, query: query, scan: scan, ready: ready, resolve: resolve, ch: make(chan []T, prefetchChunks)}
}

// run reads the whole query into the channel, then closes it.
func (s *stream[T]) run(ctx context.Context, tx pgx.Tx) {
	defer close(s.ch)
	rows, err := tx.Query(ctx, s.query)
	if err != nil {
		s.err = readErr(s.table, err)
		return
	}
	defer rows.Close()
	chunk := make([]T, 0, prefetchChunkRows)
	send := func() bool {
		select {
		case <-s.ready:
			s.resolve(chunk)
		default:
		}
		select {
		case s.ch <- chunk:
			chunk = make([]T, 0, prefetchChunkRows)
			return true
		case <-ctx.Done():
			s.err = readErr(s.table, ctx.Err())
			return false
		}
	}
	for rows.Next() {
		chunk = chunk[:len(chunk)+1]
		if err := s.scan(rows, &chunk[len(chunk)-1]); err != nil {
			s.err = readErr(s.table, err)
			return
		}
		if len(chunk) == prefetchChunkRows && !send() {
			return
		}
	}
	if err := rows.Err(); err != nil {
		s.err = readErr(s.table, err)
		return
	}
	if len(chunk) > 0 {
		send()
	}
}

// each calls fn on every row, in order, then returns the read error.
func (s *stream[T]) each(fn func(*T) error) error {
	for chunk := range s.ch {
		for i := range chunk {
			if err := fn(&chunk[i]); err != nil {
				return err
			}
		}
	}
	return s.err
}

// runner is one query of the reader goroutine.
type runner interface {
	run(ctx context.Context, tx pgx.Tx)
}

// prefetcher owns the reading connections and their goroutines.
type prefetcher struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once every goroutine has returned
}

// startPrefetch runs each list of streams, in order, in its own
// goroutine, on the transaction of the same index (in the exported
// snapshot), whose connection it closes when done. stop must be called.
func startPrefetch(ctx context.Context, lists [][]runner, txs []pgx.Tx) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for i, streams := range lists {
		tx := txs[i]
		wg.Go(func() {
			defer tx.Conn().Close(context.Background())
			defer func() { _ = tx.Rollback(context.Background()) }()
			for _, s := range streams {
				s.run(ctx, tx)
			}
		})
	}
	go func() {
		wg.Wait()
		close(p.done)
	}()
	return p
}

// stop cancels the reads still running and waits for the goroutines.
func (p *prefetcher) stop() {
	p.cancel()
	<-p.done
}

// reads are the reads of the second connection, in the order it does
// them: every device first (the token steps look their devices up in it,
// instead of joining access_tokens with devices on the server), then the
// token streams.
type reads struct {
	devices      *deviceIndex
	accessTokens *stream[accessTokenRow]
	refresh      *stream[refreshRow]

	// users is the migration's users map, set before usersReady is
	// closed and read-only from then on.
	users      map[string]*userInfo
	usersReady chan struct{}
}

func newReads() *reads {
	rd := &reads{usersReady: make(chan struct{}), devices: &deviceIndex{ready: make(chan struct{})}}
	rd.accessTokens = newStream("access_tokens", qTokensPlain, scanAccessToken, rd.usersReady, func(c []accessTokenRow) {
		for i := range c {
			c[i].u = rd.users[c[i].userID]
		}
	})
	rd.refresh = newStream("refresh_tokens", qRefreshTokens, scanRefresh, rd.usersReady, func(c []refreshRow) {
		for i := range c {
			c[i].u = rd.users[c[i].userID]
		}
	})
	return rd
}

// deviceIndex is every Synapse device, in read order, and where each
// (user, device) is. Built by the reader goroutine; once ready is closed
// it belongs to the mapping.
type deviceIndex struct {
	rows     []deviceRow
	at       map[devKey]int
	err      error // written before ready is closed
	ready    chan struct{}
	estimate int64 // the table's estimated row count, set before run starts
}

// maxPresized caps the rows an estimate may reserve room for.
const maxPresized = 1 << 21

func (d *deviceIndex) run(ctx context.Context, tx pgx.Tx) {
	defer close(d.ready)
	rows, err := tx.Query(ctx, qDevicesAll)
	if err != nil {
		d.err = readErr("devices", err)
		return
	}
	defer rows.Close()
	// Sized for the estimated row count (at most maxPresized rows), so
	// that neither grows by doubling as the rows come.
	n := int(min(max(d.estimate, 0), maxPresized))
	d.rows = make([]deviceRow, 0, n)
	d.at = make(map[devKey]int, n)
	for rows.Next() {
		d.rows = append(d.rows, deviceRow{})
		r := &d.rows[len(d.rows)-1]
		if err := scanDevice(rows, r); err != nil {
			d.err = readErr("devices", err)
			return
		}
		d.at[devKey{r.userID, r.device}] = len(d.rows) - 1
	}
	if err := rows.Err(); err != nil {
		d.err = readErr("devices", err)
	}
}

// wait returns the index once it is built.
func (d *deviceIndex) wait(ctx context.Context) (*deviceIndex, error) {
	select {
	case <-d.ready:
		return d, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lookup returns the device (user, device), or nil.
func (d *deviceIndex) lookup(user, device string) *deviceRow {
	if i, ok := d.at[devKey{user, device}]; ok {
		return &d.rows[i]
	}
	return nil
}

// usersDone hands the complete users map to the reader goroutine, which
// from then on looks up the users of the rows it reads. A row whose user
// it did not find (or read before) is looked up again by the mapping,
// which reports a missing user.
func (rd *reads) usersDone(users map[string]*userInfo) {
	rd.users = users
	close(rd.usersReady)
}

// startReads opens two more connections on db in the snapshot of tx and
// starts reading: every device (devices is their estimated count) then
// the plain access tokens on one, the refresh pairs on the other. The
// caller must stop the returned prefetcher.
//
// The refresh query (a join of refresh_tokens with their access tokens
// and devices, which returns its first row only once the server has
// hashed them) runs beside the other reads instead of after them, so its
// rows are ready when the mapping gets to them. Kept for measured speed:
// with the benchmark's scale set, reading and mapping the refresh pairs
// after the plain tokens took 306-762 ms on the shared connection and
// 40-277 ms on their own (4 runs each, on a machine at load 7-15; the
// plain tokens' step took as long either way, within the noise).
func startReads(ctx context.Context, db *dbTarget, tx pgx.Tx, devices int64) (*reads, *prefetcher, error) {
	id, err := exportSnapshot(ctx, tx)
	if err != nil {
		return nil, nil, db.classify(err, "prepare the parallel reads of")
	}
	var txs []pgx.Tx
	for range 2 {
		conn, err := db.connect(ctx)
		if err == nil {
			var rtx pgx.Tx
			if rtx, err = importSnapshot(ctx, conn, id); err == nil {
				txs = append(txs, rtx)
				continue
			}
			conn.Close(context.Background())
			err = db.classify(err, "start the parallel read transaction on")
		}
		for _, t := range txs {
			_ = t.Rollback(context.Background())
			t.Conn().Close(context.Background())
		}
		return nil, nil, err
	}
	r := newReads()
	r.devices.estimate = devices
	return r, startPrefetch(ctx, [][]runner{{r.devices, r.accessTokens}, {r.refresh}}, txs), nil
}

package synapse

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
)

// presortColumns are the MAS tables whose rows are COPYed sorted, and the
// column (its position in masColumns) they are sorted by: the text key of
// their costliest index (users.username, user_emails.email,
// compat_access_tokens.access_token).
//
// PostgreSQL builds an index by sorting the table's rows in heap order,
// and its quicksort first checks whether its input is already in order;
// if so it is done after n-1 comparisons instead of about n·log2(n). Text
// comparisons are the dearest ones (outside the "C" collation each is a
// strcoll call, with no abbreviated keys), so rows written in the order of
// a text index make that index cheap to build. It only pays when the MAS
// database compares text bytewise (C, POSIX, C.UTF-8, or the builtin
// provider): then Go's byte order is the index's order. Otherwise the
// rows are streamed as read (presortable says which).
//
// Kept for measured speed: on a table shaped like the benchmark's scale
// set (283,800 access tokens syt_0, syt_1, ... with ULID-like ids),
// building the unique index on access_token took 320-410 ms of server CPU
// from rows in read order and 110-150 ms from sorted rows, while the
// table's two UUID indexes cost the same either way (±10 ms); in the
// benchmark (scripts/bench.d/synapse.sh) the CPU of the whole rebuild went
// from 2.6-2.8 s to 1.6-2.0 s. Sorting the three tables cost about
// 0.18 s of CPU in this process (pprof, same set), off the server's path.
//
// The users are the exception: when their table is presortable, Synapse
// returns them in username order (qUsersByLocalpart), and they are
// COPYed as they are read instead of after the last one, so that MAS
// starts writing earlier. Kept for measured speed: with the benchmark's
// set, 2.66-3.08 s end to end and 1.98-2.34 s of CPU for the MAS backend
// with it, 2.80-4.29 s and 2.09-2.59 s with the users sorted here (4
// alternating runs each, load 2.7-4).
var presortColumns = map[string]int{
	"users":                1, // username
	"user_emails":          2, // email
	"compat_access_tokens": 2, // access_token
}

// sizeSample is how many rows of a presorted table are encoded before
// its buffer is sized for the rest.
const sizeSample = 1024

// maxReserve caps what the estimate may reserve for a presorted table.
const maxReserve = 256 << 20

// sortedRows holds the encoded rows of a presorted table until the table
// is complete: one buffer, and where each row and its key are in it (no
// pointers: sorting moves no pointer and keeps no string alive).
type sortedRows struct {
	buf  copyBuf
	refs []sortRef
}

type sortRef struct {
	start, end       int32 // the row in buf
	keyStart, keyEnd int32 // the key's bytes in buf
}

// bytewiseCollations are the libc collations that order text like bytes
// (glibc's C.UTF-8 compares code points, which is UTF-8 byte order).
var bytewiseCollations = []string{"C", "POSIX", "C.UTF-8", "C.utf8"}

// presortable reports whether the MAS database compares the presorted
// columns bytewise, so that sorting them in Go gives their index order.
// Any doubt (an unknown collation, a query that fails on an old server)
// gives false, which only costs speed. The queries run in a savepoint that
// is released either way, so a failure leaves tx usable and in its own
// (sub)transaction, as COPY FREEZE needs.
func presortable(ctx context.Context, tx pgx.Tx) bool {
	if _, err := tx.Exec(ctx, "SAVEPOINT runbook_presort"); err != nil {
		return false
	}
	ok := bytewise(ctx, tx)
	if !ok {
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT runbook_presort"); err != nil {
			return false
		}
	}
	_, err := tx.Exec(ctx, "RELEASE SAVEPOINT runbook_presort")
	return ok && err == nil
}

func bytewise(ctx context.Context, tx pgx.Tx) bool {
	var collate, provider string
	// datlocprovider exists from PostgreSQL 15 on; before, only libc.
	if err := tx.QueryRow(ctx, `SELECT datcollate, COALESCE(to_jsonb(d) ->> 'datlocprovider', 'c')
FROM pg_database d WHERE datname = current_database()`).Scan(&collate, &provider); err != nil {
		return false
	}
	switch provider {
	case "b": // builtin (PostgreSQL 17+): C and C.UTF-8 both compare code points
	case "c":
		if !slices.Contains(bytewiseCollations, collate) {
			return false
		}
	default:
		return false
	}
	var tables, cols []string
	for t, i := range presortColumns {
		tables = append(tables, t)
		cols = append(cols, masColumns[t][i])
	}
	// Each column must use the database's collation (100) or "C" (950) or
	// "POSIX" (951).
	var ok *bool
	if err := tx.QueryRow(ctx, `SELECT bool_and(a.attcollation IN (100, 950, 951)) AND count(*) = cardinality($1::text[])
FROM unnest($1::text[], $2::text[]) AS k(t, c)
JOIN pg_attribute a ON a.attrelid = to_regclass(k.t) AND a.attname = k.c`, tables, cols).Scan(&ok); err != nil {
		return false
	}
	return ok != nil && *ok
}

// addSorted encodes one row of a presorted table, keyed by its column
// col, which must be a non-NULL string.
func (m *migration) addSorted(entity, table string, col int, row []any) error {
	s := m.sorted[table]
	if s == nil {
		s = &sortedRows{}
		m.sorted[table] = s
	}
	if _, ok := row[col].(string); !ok {
		return fmt.Errorf("encode a row of %s: column %d is not text", table, col+1)
	}
	if len(s.refs) == sizeSample {
		// Make room for the rows still to come, as estimated from the
		// entity's row count and the rows so far, so that the buffer does
		// not grow by doubling (each time copying what it holds).
		// A stale estimate could be far too large: reserve at most
		// maxReserve bytes.
		if more := min(int(m.totals[entity])-sizeSample, maxReserve/max(len(s.buf.b)/sizeSample, 1)); more > 0 {
			s.buf.b = slices.Grow(s.buf.b, more*len(s.buf.b)/sizeSample*9/8)
			s.refs = slices.Grow(s.refs, more*9/8)
		}
	}
	start := len(s.buf.b)
	if err := s.buf.appendRow(row...); err != nil {
		return fmt.Errorf("encode a row of %s: %w", table, err)
	}
	if len(s.buf.b) > math.MaxInt32 {
		return fmt.Errorf("encode a row of %s: more than 2 GB of rows to sort", table)
	}
	// Find the key's bytes: after the field count, each field is its
	// length (4 bytes) and its bytes.
	k := start + 2
	for range col {
		k += 4 + int(binary.BigEndian.Uint32(s.buf.b[k:]))
	}
	n := int(binary.BigEndian.Uint32(s.buf.b[k:]))
	s.refs = append(s.refs, sortRef{start: int32(start), end: int32(len(s.buf.b)), keyStart: int32(k + 4), keyEnd: int32(k + 4 + n)})
	if len(s.refs)%flushRows == 0 {
		m.progress(entity)
	}
	return nil
}

// flushSorted sorts the held rows of tables and hands them to the copier.
func (m *migration) flushSorted(ctx context.Context, tables []string) error {
	for _, t := range tables {
		s := m.sorted[t]
		if s == nil {
			continue
		}
		delete(m.sorted, t)
		b := s.buf.b
		slices.SortFunc(s.refs, func(x, y sortRef) int {
			return bytes.Compare(b[x.keyStart:x.keyEnd], b[y.keyStart:y.keyEnd])
		})
		out := &copyBuf{b: b, rows: int64(len(s.refs)), order: s.refs}
		if err := m.send(ctx, copierJob{batch: map[string]*copyBuf{t: out}}); err != nil {
			return err
		}
	}
	return nil
}

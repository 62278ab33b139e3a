package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

// rawStore reads and appends a run's journal lines as they are stored
// (checksum, space, JSON; no newline): what CopyRuns moves between stores,
// so that sealed values are copied without being opened.
type rawStore interface {
	Store
	rawLines(id string) ([][]byte, error)
	// appendRaw adds lines after the run's first have ones (have 0: the
	// run is created).
	appendRaw(id string, have int, lines [][]byte) error
}

// splitLines cuts b into its complete lines (a torn last one is left out).
func splitLines(b []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return out
		}
		out = append(out, b[:i])
		b = b[i+1:]
	}
}

func (s *LocalStore) rawLines(id string) ([][]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.runDir(id), journalFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &notFoundError{id: id, dir: s.Dir}
	}
	return splitLines(b), err
}

func (s *LocalStore) appendRaw(id string, have int, lines [][]byte) error {
	var buf []byte
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	dir := s.runDir(id)
	path := filepath.Join(dir, journalFile)
	if have == 0 {
		// As Create: the journal appears whole under its name.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		tmp := path + ".new"
		if err := writeSynced(tmp, buf, os.O_CREATE|os.O_TRUNC|os.O_WRONLY); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		syncDir(dir)
		syncDir(filepath.Dir(dir))
		return nil
	}
	// A torn last line (a crash) goes before appending.
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	end := 0
	for range have {
		end += bytes.IndexByte(b[end:], '\n') + 1
	}
	if end < len(b) {
		if err := os.Truncate(path, int64(end)); err != nil {
			return err
		}
	}
	return writeSynced(path, buf, os.O_APPEND|os.O_WRONLY)
}

func writeSynced(path string, b []byte, flag int) error {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *PGStore) rawLines(id string) ([][]byte, error) {
	b, found, err := s.lines(id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &notFoundError{id: id, dir: s.where}
	}
	return splitLines(b), nil
}

func (s *PGStore) appendRaw(id string, have int, lines [][]byte) error {
	var buf []byte
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}
	return s.retry(func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if have == 0 {
				// The run's row from its first record, when it reads.
				var m Meta
				if r, err := decodeLine(lines[0]); err == nil && r.Meta != nil {
					m = *r.Meta
				}
				if _, err := tx.Exec(ctx, `INSERT INTO runbook.runs (id, runbook, lock_key, started) VALUES ($1, $2, $3, $4)`,
					id, m.Runbook, m.Lock, m.Started); err != nil {
					return err
				}
			}
			return insertLines(ctx, tx, id, int64(have)+1, buf)
		})
	})
}

// CopyReport says what CopyRuns did with each run.
type CopyReport struct {
	Copied   []string // new in the destination
	Extended []string // the destination had the start of it: the rest was added
	UpToDate []string // the destination had it all
}

// CopyRuns copies runs from src to dst (ids: every run of src when empty),
// each record as it is stored, so that sealed values are neither opened
// nor changed. It is idempotent: a run dst has whole is left, a run dst has
// the first records of is extended. A run whose records in dst differ
// from src's (both went on after an earlier copy) is left as it is and
// named in the error, the others are copied. Locks are not copied.
func CopyRuns(dst, src Store, ids []string) (*CopyReport, error) {
	d, ok1 := dst.(rawStore)
	s, ok2 := src.(rawStore)
	if !ok1 || !ok2 {
		return nil, errors.New("copy runs: unsupported store")
	}
	if len(ids) == 0 {
		var err error
		if ids, err = src.List(); err != nil {
			return nil, err
		}
	}
	rep := &CopyReport{}
	var errs []error
	for i := len(ids) - 1; i >= 0; i-- { // oldest first
		id := ids[i]
		lines, err := s.rawLines(id)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", id, err))
			continue
		}
		have, err := d.rawLines(id)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("run %s: %w", id, err))
			continue
		}
		n := min(len(have), len(lines))
		same := true
		for k := range n {
			same = same && bytes.Equal(have[k], lines[k])
		}
		switch {
		case !same || len(have) > len(lines):
			errs = append(errs, fmt.Errorf("run %s differs in %s from %s (%d and %d records): left as it is", id, dst.Location(id), src.Location(id), len(have), len(lines)))
		case len(have) == len(lines):
			rep.UpToDate = append(rep.UpToDate, id)
		default:
			if err := d.appendRaw(id, len(have), lines[len(have):]); err != nil {
				errs = append(errs, fmt.Errorf("run %s: copy to %s: %w", id, dst.Location(id), err))
				continue
			}
			if len(have) == 0 {
				rep.Copied = append(rep.Copied, id)
			} else {
				rep.Extended = append(rep.Extended, id)
			}
		}
	}
	return rep, errors.Join(errs...)
}

package journal

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RunFilter selects runs by what the store knows without replaying their
// journals. The zero RunFilter selects every run.
type RunFilter struct {
	Runbook string // the runbook block's name (Meta.Runbook); "" any
	Lock    string // the lock key (Meta.Lock); "" any
	// States are journaled states (State.State as replayed, not
	// "interrupted" as derived from a dead holder); empty: any. NotStates
	// leaves those out.
	States, NotStates []string
	// Before selects the runs older than this id (the last id of the
	// previous page); "" starts with the newest.
	Before string
	// After selects the runs newer than this id; "" any.
	After string
	Limit int // at most this many ids; 0: all
}

// RunLister is a Store that selects runs with a query (PGStore): runs
// listings and the commands that pick a run read a page of ids, not every
// run's journal.
type RunLister interface {
	ListRuns(f RunFilter) ([]string, error)
	LoadRuns(ids []string) ([]*State, error)
}

var _ RunLister = (*PGStore)(nil)

// pgRunState is a run's journaled state in SQL: that of its last
// run_state record unless a run_resumed (or its run_started) came after
// it. Records keep Go's field order, so the state follows the type.
const pgRunState = `(SELECT CASE WHEN strpos(x.line, '"type":"run_state"') > 0
		THEN coalesce(substring(x.line from '"type":"run_state","state":"([a-z_]+)"'), '') ELSE 'running' END
	FROM runbook.records x WHERE x.run_id = r.id
		AND (x.seq = 1 OR strpos(x.line, '"type":"run_state"') > 0 OR strpos(x.line, '"type":"run_resumed"') > 0)
	ORDER BY x.seq DESC LIMIT 1)`

// ListRuns implements RunLister: the ids of the runs f selects, newest
// first.
func (s *PGStore) ListRuns(f RunFilter) ([]string, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Runbook != "" {
		where = append(where, "r.runbook = "+arg(f.Runbook))
	}
	if f.Lock != "" {
		where = append(where, "r.lock_key = "+arg(f.Lock))
	}
	if f.Before != "" {
		where = append(where, "r.id < "+arg(f.Before))
	}
	if f.After != "" {
		where = append(where, "r.id > "+arg(f.After))
	}
	if len(f.States) > 0 {
		where = append(where, pgRunState+" = ANY("+arg(f.States)+"::text[])")
	}
	if len(f.NotStates) > 0 {
		where = append(where, "NOT ("+pgRunState+" = ANY("+arg(f.NotStates)+"::text[]))")
	}
	q := "SELECT r.id FROM runbook.runs r"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY r.id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.where, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list runs in %s: %w", s.where, err)
	}
	return ids, nil
}

// LoadRuns reads the runs ids (as Load does) with one query: a page of a
// listing. A run that does not exist is left out; a corrupt one is
// returned in State RunCorrupt.
func (s *PGStore) LoadRuns(ids []string) ([]*State, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT run_id, line FROM runbook.records WHERE run_id = ANY($1::text[]) ORDER BY run_id, seq`, ids)
	if err != nil {
		return nil, fmt.Errorf("read runs from %s: %w", s.where, err)
	}
	lines := map[string]*bytes.Buffer{}
	var id string
	var line []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &line}, func() error {
		b := lines[id]
		if b == nil {
			b = &bytes.Buffer{}
			lines[id] = b
		}
		b.Write(line)
		b.WriteByte('\n')
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read runs from %s: %w", s.where, err)
	}
	out := make([]*State, 0, len(ids))
	for _, id := range ids {
		b, ok := lines[id]
		if !ok {
			continue
		}
		st, err := s.replay(id, b.Bytes(), true, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

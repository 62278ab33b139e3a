package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/engine/journal"
)

// varsJSON is a target's variables as stored: journal-encoded values and
// what the sealed ones are bound to.
type varsJSON struct {
	Bind string                    `json:"bind"`
	Vars map[string]*journal.Value `json:"vars"`
}

// Status is a campaign with its counts of targets by state.
type Status struct {
	Name           string         `json:"name"`
	Kind           string         `json:"kind"`
	State          string         `json:"state"`
	Reason         string         `json:"reason,omitempty"`
	Files          []string       `json:"files"`
	MaxConcurrency int            `json:"max_concurrency,omitempty"`
	MaxErrors      int            `json:"max_errors,omitempty"` // failed runs that pause it
	MaxErrorsSpec  string         `json:"max_errors_spec,omitempty"`
	Canary         int            `json:"canary,omitempty"`
	Total          int            `json:"total"`
	Counts         map[string]int `json:"counts"`
	Failed         []TargetInfo   `json:"failed,omitempty"`
	Created        time.Time      `json:"created"`
	Updated        time.Time      `json:"updated"`
}

// TargetInfo is one target as listed.
type TargetInfo struct {
	Line     int    `json:"line"`
	LockKey  string `json:"lock_key"`
	State    string `json:"state"`
	RunID    string `json:"run_id,omitempty"`
	RunState string `json:"run_state,omitempty"`
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
}

// maxFailedListed caps the failed targets a status lists.
const maxFailedListed = 100

// Status reads campaign name.
func (s *Store) Status(ctx context.Context, name string) (*Status, error) {
	c, err := scanCampaign(s.pool.QueryRow(ctx, `SELECT `+campaignCols+` FROM runbook.campaigns WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no campaign %q (see `runbook campaign ls`)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", name, err)
	}
	st := statusOf(c)
	if err := s.count(ctx, c.ID, st); err != nil {
		return nil, err
	}
	st.Failed, err = s.Targets(ctx, c.ID, TargetFailed, maxFailedListed)
	return st, err
}

func statusOf(c *campaignRow) *Status {
	return &Status{Name: c.Name, Kind: c.Kind, State: c.State, Reason: c.Reason, Files: c.Files,
		MaxConcurrency: c.MaxConcurrency, MaxErrors: c.MaxErrors, MaxErrorsSpec: c.MaxErrorsSpec, Canary: c.Canary,
		Counts: map[string]int{}, Created: c.Created, Updated: c.Updated}
}

func (s *Store) count(ctx context.Context, id int64, st *Status) error {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM runbook.targets WHERE campaign = $1 GROUP BY state`, id)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return err
		}
		st.Counts[state], st.Total = n, st.Total+n
	}
	return rows.Err()
}

// Targets lists up to limit targets of campaign id in state ("" : any), by
// line.
func (s *Store) Targets(ctx context.Context, id int64, state string, limit int) ([]TargetInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT line, lock_key, state, run_id, run_state, error, attempts FROM runbook.targets
		WHERE campaign = $1 AND ($2 = '' OR state = $2) ORDER BY line LIMIT $3`, id, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TargetInfo
	for rows.Next() {
		var t TargetInfo
		if err := rows.Scan(&t.Line, &t.LockKey, &t.State, &t.RunID, &t.RunState, &t.Error, &t.Attempts); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// List returns every campaign, newest first, with its counts.
func (s *Store) List(ctx context.Context) ([]*Status, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+campaignCols+` FROM runbook.campaigns ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	var cs []*campaignRow
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*Status, 0, len(cs))
	for _, c := range cs {
		st := statusOf(c)
		if err := s.count(ctx, c.ID, st); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Finished reports whether the campaign will start no more runs and none
// runs: done, cancelled, stopped or paused with nothing running.
func (st *Status) Finished() bool {
	busy := st.Counts[TargetQueued] + st.Counts[TargetRunning]
	switch st.State {
	case StateDone:
		return true
	case StateCancelled, StateStopped, StatePaused:
		return busy == 0
	}
	return false
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

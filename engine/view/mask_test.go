package view

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/mask"
)

// Short secrets that are also JSON keys, parts of timestamps and numbers
// must be masked in values only: every line stays valid JSON with its keys
// and time, and no value shows a secret.
func TestJSONMasksValuesNotText(t *testing.T) {
	secrets := []string{"step", "type", "2026", "5432"}
	m := mask.New()
	m.Add(secrets...)
	at := time.Date(2026, 12, 4, 20, 26, 0, 0, time.UTC)
	evs := []event.Event{
		{V: 1, Type: event.RunStarted, Time: at, RunID: "r1", Message: "runbook step-by-step"},
		{V: 1, Type: event.StepStarted, Time: at, RunID: "r1", Step: `db["type"]`, Action: "core.exec", Attempt: 1},
		{V: 1, Type: event.StepProgress, Time: at, RunID: "r1", Step: "db", Current: 2026, Total: 5432, Unit: "steps"},
		{V: 1, Type: event.StepLog, Time: at, RunID: "r1", Step: "db", Level: "info", Message: "port 5432, year 2026"},
		{V: 1, Type: event.StepSucceeded, Time: at, RunID: "r1", Step: "db", DurationMS: 2026, Outputs: map[string]any{
			"port": int64(5432), "year": float64(2026), "port_text": "5432", "ratio": 0.5,
			"nested": map[string]any{"type": []any{int64(5432), "a step", true, nil}},
		}},
		{V: 1, Type: event.RunFinished, Time: at, RunID: "r1", State: "succeeded", Error: "type mismatch",
			Outputs: map[string]any{"n": 5432}, Fields: map[string]string{"journal": "/runs/2026/r1", "resume": ""}},
	}
	var out bytes.Buffer
	sink := JSON(&out, m)
	for _, e := range evs {
		sink.Emit(e)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), out.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i, err, line)
		}
		// The keys are those of the unmasked event.
		plain, _ := json.Marshal(evs[i])
		var want map[string]any
		json.Unmarshal(plain, &want)
		if diff := cmp.Diff(keys(want), keys(got)); diff != "" {
			t.Errorf("line %d keys (-want +got):\n%s", i, diff)
		}
		if got["time"] != want["time"] || got["type"] != want["type"] || got["run_id"] != "r1" {
			t.Errorf("line %d: time, type or run ID changed: %s", i, line)
		}
		delete(got, "time")
		walkValues(got, func(path string, v any) {
			s := fmt.Sprint(v)
			if path == ".type" || path == ".level" {
				return // names of the format, not values
			}
			if _, isNum := v.(float64); isNum {
				if path == ".current" || path == ".total" || path == ".duration_ms" || path == ".v" {
					return // counts, not values
				}
			}
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					t.Errorf("line %d: %s = %v shows %q: %s", i, path, v, secret, line)
				}
			}
		})
	}
	var done map[string]any
	json.Unmarshal([]byte(lines[4]), &done)
	wantOutputs := map[string]any{
		"port": "***", "year": "***", "port_text": "***", "ratio": 0.5,
		"nested": map[string]any{"***": []any{"***", "a ***", true, nil}},
	}
	if diff := cmp.Diff(wantOutputs, done["outputs"]); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if evs[4].Outputs["port"] != int64(5432) {
		t.Errorf("masking changed the event it was given")
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// walkValues calls f on every value inside v that is not a map or slice.
func walkValues(v any, f func(path string, v any)) {
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		default:
			f(path, v)
		}
	}
	walk("", v)
}

// The plain and live views mask the values they show, not their own words
// or the time.
func TestPlainMasksValuesNotText(t *testing.T) {
	m := mask.New()
	m.Add("step", "18:04")
	at := time.Date(2026, 11, 23, 18, 4, 5, 0, time.Local)
	var plain, live bytes.Buffer
	p := NewPlain(&plain, m)
	l := NewLive(&live, m, 80, false)
	for _, e := range []event.Event{
		{Type: event.RollbackStarted, Time: at},
		{Type: event.StepFailed, Time: at, Step: "db", Error: "bad step at 18:04"},
	} {
		p.Emit(e)
		l.Emit(e)
	}
	l.Close()
	want := "18:04:05 rolling back completed steps, in reverse order\n18:04:05 db: FAILED: bad *** at ***\n"
	if plain.String() != want || live.String() != want {
		t.Errorf("plain:\n%slive:\n%swant:\n%s", plain.String(), live.String(), want)
	}
}

// An output number that is a secret becomes a masked string, and the
// summary's own words stay.
func TestSummaryMasksValues(t *testing.T) {
	m := mask.New()
	m.Add("5432", "Steps")
	var b strings.Builder
	WriteSummary(&b, m, &Summary{RunID: "r", State: "succeeded", Journal: "/j/5432",
		Steps:   []StepLine{{Address: "a", State: "succeeded", Error: ""}},
		Outputs: map[string]any{"port": int64(5432), "list": []any{int64(1), "5432"}}})
	for _, want := range []string{"Steps: 1 (1 succeeded)", `port = "***"`, `list = [1,"***"]`, "Journal: /j/***"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// A plugin may report any numbers as progress: the views clamp them
// rather than panic.
func TestProgressOutOfRange(t *testing.T) {
	const maxInt = int64(^uint64(0) >> 1)
	tests := []struct {
		cur, total int64
		plain      string
		bar        string
	}{
		{-5, 10, "a: 0/10 docs (0%)", "[                    ] 0/10 docs"},
		{5, -1, "a: 5 docs", "5 docs"},
		{-5, -1, "a: 0 docs", "0 docs"},
		{50, 10, "a: 10/10 docs (100%)", "[====================] 10/10 docs"},
		{5, 10, "a: 5/10 docs (50%)", "[==========          ] 5/10 docs"},
		{maxInt, maxInt, fmt.Sprintf("a: %d/%d docs (100%%)", maxInt, maxInt), fmt.Sprintf("[====================] %d/%d docs", maxInt, maxInt)},
		{maxInt / 2, maxInt, fmt.Sprintf("a: %d/%d docs (50%%)", maxInt/2, maxInt), fmt.Sprintf("[==========          ] %d/%d docs", maxInt/2, maxInt)},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.cur, "/", tc.total), func(t *testing.T) {
			var plain, live bytes.Buffer
			p := NewPlain(&plain, nil)
			l := NewLive(&live, nil, 200, false)
			defer l.Close()
			now := time.Now()
			l.Emit(event.Event{Type: event.StepStarted, Time: now, Step: "a", Action: "x.y"})
			l.Emit(event.Event{Type: event.StepProgress, Time: now.Add(-2 * time.Second), Step: "a", Current: -7, Total: tc.total, Unit: "docs"})
			l.Emit(event.Event{Type: event.StepProgress, Time: now, Step: "a", Current: tc.cur, Total: tc.total, Unit: "docs"})
			p.Emit(event.Event{Type: event.StepProgress, Time: now, Step: "a", Current: tc.cur, Total: tc.total, Unit: "docs"})
			l.mu.Lock()
			l.redrawLocked()
			bar := progressText(l.running["a"], now)
			l.mu.Unlock()
			if got := strings.TrimSpace(plain.String()[9:]); got != tc.plain {
				t.Errorf("plain %q, want %q", got, tc.plain)
			}
			if !strings.HasPrefix(bar, tc.bar) {
				t.Errorf("live %q, want %q…", bar, tc.bar)
			}
			if (tc.cur > 0 || tc.total > 0) && !strings.Contains(live.String(), tc.bar) {
				t.Errorf("live view lacks %q:\n%s", tc.bar, live.String())
			}
		})
	}
}

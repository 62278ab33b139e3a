package view

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/mask"
)

func TestViewsMask(t *testing.T) {
	m := mask.New()
	m.Add("hunter22")
	evs := []event.Event{
		{Type: event.StepStarted, Step: "a", Action: "core.exec", Time: time.Now()},
		{Type: event.StepProgress, Step: "a", Current: 5, Total: 10, Unit: "docs", Time: time.Now()},
		{Type: event.StepLog, Step: "a", Level: "warn", Message: "password hunter22 rejected", Time: time.Now()},
		{Type: event.StepFailed, Step: "a", Error: "auth: hunter22", Hint: "check it", Time: time.Now()},
	}
	var plain, js, live bytes.Buffer
	p := NewPlain(&plain, m)
	j := JSON(&js, m)
	l := NewLive(&live, m, 80, true)
	for _, e := range evs {
		p.Emit(e)
		j.Emit(e)
		l.Emit(e)
	}
	l.Close()
	for name, out := range map[string]string{"plain": plain.String(), "json": js.String(), "live": live.String()} {
		if strings.Contains(out, "hunter22") {
			t.Errorf("%s view leaks the secret:\n%s", name, out)
		}
		if !strings.Contains(out, "***") {
			t.Errorf("%s view lost the masked line:\n%s", name, out)
		}
	}
	if n := strings.Count(js.String(), "\n"); n != len(evs) {
		t.Errorf("json: %d lines for %d events", n, len(evs))
	}
	if !strings.Contains(plain.String(), "a: FAILED: auth: ***") || !strings.Contains(plain.String(), "hint: check it") {
		t.Errorf("plain:\n%s", plain.String())
	}
}

// The lines every step prints keep their format.
func TestPlainStepLines(t *testing.T) {
	var b strings.Builder
	p := NewPlain(&b, mask.New())
	at := time.Date(2026, 11, 23, 18, 4, 5, 0, time.Local)
	p.Emit(event.Event{Type: event.StepStarted, Time: at, Step: `db["x"]`, Action: "core.noop", Attempt: 1})
	p.Emit(event.Event{Type: event.StepStarted, Time: at, Step: "s", Action: "couchdb.replicate", Attempt: 2})
	p.Emit(event.Event{Type: event.StepSucceeded, Time: at, Step: "s", Attempt: 1, DurationMS: 1500})
	p.Emit(event.Event{Type: event.StepSucceeded, Time: at, Step: "s", Attempt: 3, DurationMS: 0})
	want := "18:04:05 db[\"x\"]: started [core.noop]\n" +
		"18:04:05 s: started (attempt 2) [couchdb.replicate]\n" +
		"18:04:05 s: done in 1.5s\n" +
		"18:04:05 s: done (attempt 3) in 0s\n"
	if b.String() != want {
		t.Errorf("got:\n%swant:\n%s", b.String(), want)
	}
}

package viewer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/mask"
)

// EventLogFile is the file beside a run's journal where EventLog keeps the
// run's events (JSON lines, as `-json` prints them): the journal has no
// log lines nor progress, the viewer reads them there.
const EventLogFile = "events.ndjson"

// EventLog is an event.Sink that appends each run's log and progress
// events (already masked by the engine) to EventLogFile in the run's
// journal directory (from run_started's fields.journal; a store without
// directories gets none). Progress is kept at most once a second per
// step. The zero value is ready; a front end adds it to its sink with
// event.Multi.
type EventLog struct {
	// Mask, when set, masks each event once more before it is written (a
	// last line of defence, as the views do; events arrive masked).
	Mask  *mask.Masker
	mu    sync.Mutex
	dirs  map[string]string // run → journal directory
	files map[string]*os.File
	last  map[string]time.Time // run+step → last progress written
}

var _ event.Sink = (*EventLog)(nil)

// Emit implements event.Sink.
func (l *EventLog) Emit(e event.Event) {
	switch e.Type {
	case event.RunStarted, event.StepLog, event.StepProgress, event.RunFinished:
	default:
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files == nil {
		l.dirs, l.files, l.last = map[string]string{}, map[string]*os.File{}, map[string]time.Time{}
	}
	if e.Type == event.RunStarted {
		if fi, err := os.Stat(e.Fields["journal"]); err == nil && fi.IsDir() {
			l.dirs[e.RunID] = e.Fields["journal"]
		}
		return
	}
	if e.Type == event.RunFinished {
		delete(l.dirs, e.RunID)
		if f := l.files[e.RunID]; f != nil {
			f.Close()
			delete(l.files, e.RunID)
		}
		return
	}
	if e.Type == event.StepProgress && e.Current < e.Total {
		k := e.RunID + "\x00" + e.Step
		if time.Since(l.last[k]) < time.Second {
			return
		}
		l.last[k] = time.Now()
	}
	f := l.files[e.RunID]
	if f == nil {
		dir := l.dirs[e.RunID]
		if dir == "" {
			return
		}
		var err error
		f, err = os.OpenFile(filepath.Join(dir, EventLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		l.files[e.RunID] = f
	}
	e.V = event.Version
	if l.Mask != nil && !l.Mask.Empty() {
		e = e.Masked(l.Mask.Mask)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	_, _ = f.Write(append(b, '\n'))
}

// Close closes the files still open.
func (l *EventLog) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, f := range l.files {
		f.Close()
		delete(l.files, id)
	}
}

// logEvent is the part of an event the viewer shows.
type logEvent struct {
	Type    string    `json:"type"`
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Current int64     `json:"current"`
	Total   int64     `json:"total"`
	Unit    string    `json:"unit"`
}

// LogLine is one log line of a step (GET /api/runs/{id}/logs, SSE `log`).
type LogLine struct {
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// Progress is a step's last progress with its rate and the time left at
// that rate (SSE `progress`, GET /api/runs/{id}/logs).
type Progress struct {
	Step    string  `json:"step"`
	Current int64   `json:"current"`
	Total   int64   `json:"total"` // 0: unknown
	Unit    string  `json:"unit,omitempty"`
	Percent float64 `json:"percent,omitempty"`
	Rate    float64 `json:"rate,omitempty"`  // units per second
	ETAS    float64 `json:"eta_s,omitempty"` // seconds left at Rate
}

// progress computes a step's rate from its first and last reports.
type progress struct {
	first, last *logEvent
}

func (p *progress) update(e *logEvent) Progress {
	if p.first == nil || e.Current < p.first.Current {
		p.first = e
	}
	p.last = e
	out := Progress{Step: e.Step, Current: e.Current, Total: e.Total, Unit: e.Unit}
	if e.Total > 0 {
		out.Percent = float64(e.Current) / float64(e.Total) * 100
	}
	if dt := e.Time.Sub(p.first.Time).Seconds(); dt > 0 && e.Current > p.first.Current {
		out.Rate = float64(e.Current-p.first.Current) / dt
		if e.Total > e.Current {
			out.ETAS = float64(e.Total-e.Current) / out.Rate
		}
	}
	return out
}

// readEvents reads the complete lines of path between from and to, and
// how many bytes they take.
func readEvents(path string, from, to int64) ([]*logEvent, int64) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil, 0
	}
	var out []*logEvent
	var n int64
	br := bufio.NewReader(io.LimitReader(f, to-from))
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break // EOF or a line still being written
		}
		n += int64(len(line))
		var e logEvent
		if json.Unmarshal(bytes.TrimSpace(line), &e) == nil {
			out = append(out, &e)
		}
	}
	return out, n
}

// Logs is a run's log lines (the last ones) and each step's progress.
type Logs struct {
	Lines     []LogLine  `json:"lines"`
	Truncated int        `json:"truncated,omitempty"` // earlier lines left out
	Progress  []Progress `json:"progress"`
}

// runLogs reads run id's event log (keeping the last max lines).
func (s *Server) runLogs(id string, max int) *Logs {
	out := &Logs{Lines: []LogLine{}, Progress: []Progress{}}
	ls, ok := s.opts.Store.(*journal.LocalStore)
	if !ok {
		return out
	}
	path := filepath.Join(ls.Location(id), EventLogFile)
	evs, _ := readEvents(path, 0, fileSize(path))
	prog := map[string]*progress{}
	var order []string
	for _, e := range evs {
		switch e.Type {
		case "step_log":
			out.Lines = append(out.Lines, LogLine{Time: e.Time, Step: e.Step, Level: e.Level, Message: e.Message})
		case "step_progress":
			if prog[e.Step] == nil {
				prog[e.Step] = &progress{}
				order = append(order, e.Step)
			}
			prog[e.Step].update(e)
		}
	}
	if len(out.Lines) > max {
		out.Truncated = len(out.Lines) - max
		out.Lines = out.Lines[len(out.Lines)-max:]
	}
	for _, st := range order {
		p := prog[st]
		out.Progress = append(out.Progress, p.update(p.last))
	}
	return out
}

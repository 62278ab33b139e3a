package view

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/mask"
)

// Live is the terminal view: finished steps scroll by as plain lines,
// while the steps running now are redrawn in place below them with their
// elapsed time, a progress bar with rate and ETA when the plugin reports
// progress, and their last log line.
type Live struct {
	w     io.Writer
	m     *mask.Masker
	plain *Plain
	color bool
	width int

	mu sync.Mutex
	// The fields below are guarded by mu.
	running map[string]*liveStep
	order   []string // running steps, in start order
	drawn   int      // lines of the live region now on screen
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type liveStep struct {
	addr, action string
	started      time.Time
	undo         bool
	cur, total   int64
	unit         string
	firstProg    time.Time
	firstCur     int64
	lastLog      string
}

// NewLive starts a live view on w (a terminal of the given width).
func NewLive(w io.Writer, m *mask.Masker, width int, color bool) *Live {
	if width <= 20 {
		width = 80
	}
	l := &Live{w: w, m: m, plain: NewPlain(w, m), color: color, width: width,
		running: map[string]*liveStep{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *Live) loop() {
	defer close(l.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			l.redrawLocked()
			l.mu.Unlock()
		}
	}
}

// Close stops redrawing and clears the live region. It is safe to call
// more than once.
func (l *Live) Close() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		l.clearLocked()
		l.mu.Unlock()
	})
}

var _ event.OutputsSink = (*Live)(nil)

// ShowsOutputs implements event.OutputsSink: the step tree shows states,
// the summary the runbook's outputs.
func (l *Live) ShowsOutputs() bool { return false }

// Emit implements event.Sink.
func (l *Live) Emit(e event.Event) {
	e = masked(e, l.m)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e.Type {
	case event.StepStarted, event.UndoStarted:
		if _, ok := l.running[e.Step]; !ok {
			l.order = append(l.order, e.Step)
		}
		l.running[e.Step] = &liveStep{addr: e.Step, action: e.Action, started: e.Time, undo: e.Type == event.UndoStarted}
	case event.StepProgress:
		if s, ok := l.running[e.Step]; ok {
			if s.firstProg.IsZero() {
				s.firstProg, s.firstCur = e.Time, e.Current
			}
			s.cur, s.total, s.unit = e.Current, e.Total, e.Unit
		}
		return
	case event.StepLog:
		if s, ok := l.running[e.Step]; ok {
			s.lastLog = e.Message
		}
		if e.Level != "warn" && e.Level != "error" {
			return
		}
	case event.StepRetry:
	case event.StepSucceeded, event.StepFailed, event.StepCancelled, event.UndoSucceeded, event.UndoFailed:
		delete(l.running, e.Step)
		for i, a := range l.order {
			if a == e.Step {
				l.order = append(l.order[:i], l.order[i+1:]...)
				break
			}
		}
	}
	line := l.plain.line(e)
	if line == "" {
		return
	}
	l.clearLocked()
	if l.color {
		switch e.Type {
		case event.StepFailed, event.UndoFailed:
			line = "\x1b[31m" + line + "\x1b[0m"
		case event.StepSucceeded, event.UndoSucceeded:
			line = "\x1b[32m" + line + "\x1b[0m"
		case event.StepRetry, event.Warning:
			line = "\x1b[33m" + line + "\x1b[0m"
		}
	}
	fmt.Fprintln(l.w, line)
	l.redrawLocked()
}

func (l *Live) clearLocked() {
	if l.drawn == 0 {
		return
	}
	fmt.Fprintf(l.w, "\x1b[%dA\x1b[J", l.drawn)
	l.drawn = 0
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func (l *Live) redrawLocked() {
	l.clearLocked()
	if len(l.order) == 0 {
		return
	}
	now := time.Now()
	var b strings.Builder
	lines := 0
	max := 15
	for i, a := range l.order {
		if i == max {
			fmt.Fprintf(&b, "  … and %d more running\n", len(l.order)-max)
			lines++
			break
		}
		s := l.running[a]
		el := now.Sub(s.started).Round(time.Second)
		verb := ""
		if s.undo {
			verb = " undo"
		}
		spin := spinner[int(now.UnixMilli()/100)%len(spinner)]
		line := fmt.Sprintf("%s %s%s  %s", spin, s.addr, verb, el)
		if s.total > 0 || s.cur > 0 {
			line += "  " + progressText(s, now)
		}
		if s.lastLog != "" {
			line += "  · " + s.lastLog
		}
		if r := []rune(line); len(r) > l.width-1 {
			line = string(r[:l.width-2]) + "…"
		}
		b.WriteString(line + "\n")
		lines++
	}
	io.WriteString(l.w, b.String())
	l.drawn = lines
}

func progressText(s *liveStep, now time.Time) string {
	cur, total := clampProgress(s.cur, s.total)
	first, _ := clampProgress(s.firstCur, total)
	var out string
	if total > 0 {
		const w = 20
		n := int(float64(cur) / float64(total) * w)
		out = fmt.Sprintf("[%s%s] %d/%d %s", strings.Repeat("=", n), strings.Repeat(" ", w-n), cur, total, s.unit)
	} else {
		out = fmt.Sprintf("%d %s", cur, s.unit)
	}
	if d := now.Sub(s.firstProg).Seconds(); d >= 1 && cur > first {
		rate := float64(cur-first) / d
		out += fmt.Sprintf(" %.1f %s/s", rate, s.unit)
		if total > cur && rate > 0 {
			out += fmt.Sprintf(" ETA %s", time.Duration(float64(total-cur)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return out
}

// clampProgress keeps what a plugin reports in range: no negative count,
// and cur at most total when total is known (above 0).
func clampProgress(cur, total int64) (int64, int64) {
	cur, total = max(cur, 0), max(total, 0)
	if total > 0 {
		cur = min(cur, total)
	}
	return cur, total
}

package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
)

// stderrLineMax caps one line of a plugin's stderr: a longer line keeps its
// last stderrLineMax bytes and says how many were cut, so that a plugin
// writing without newlines cannot grow the engine's memory.
const stderrLineMax = 64 << 10

// stderrWatcher receives a plugin's stderr from go-plugin, forwards whole
// lines (prefixed with the plugin name) to out and remembers the first
// panic line and the last line, for crash reports.
type stderrWatcher struct {
	name string
	out  io.Writer
	// max is the longest line kept (stderrLineMax; smaller in tests).
	max int

	mu sync.Mutex // guards everything below
	// buf holds the end of a partial line: at most 2*max bytes, of which
	// the last max are kept when the line ends.
	buf []byte
	// cut counts the bytes of the partial line dropped from buf's front.
	cut int
	// panic is the first "panic: " / "fatal error: " line since reset.
	panic string
	// last is the last non-empty line since reset.
	last string
	// exit is how the process ended ("exit status 3"), from go-plugin's log.
	exit string
}

func newStderrWatcher(name string, out io.Writer) *stderrWatcher {
	if out == nil {
		out = io.Discard
	}
	return &stderrWatcher{name: name, out: out, max: stderrLineMax}
}

// Write looks for newlines in b only: the partial line before it was
// searched by earlier writes.
func (w *stderrWatcher) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.keep(b)
			return n, nil
		}
		w.keep(b[:i])
		w.line(w.take())
		b = b[i+1:]
	}
}

// keep appends p to the partial line, dropping its front beyond max bytes
// (amortised: buf is compacted when it would pass 2*max); w.mu is held.
func (w *stderrWatcher) keep(p []byte) {
	if len(p) >= w.max {
		w.cut += len(w.buf) + len(p) - w.max
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
		return
	}
	if len(w.buf)+len(p) > 2*w.max {
		drop := len(w.buf) + len(p) - w.max
		w.cut += drop
		w.buf = w.buf[:copy(w.buf, w.buf[drop:])]
	}
	w.buf = append(w.buf, p...)
}

// take returns the partial line as a complete one, marked when cut, and
// starts a new one; w.mu is held.
func (w *stderrWatcher) take() string {
	b, cut := w.buf, w.cut
	if extra := len(b) - w.max; extra > 0 {
		b, cut = b[extra:], cut+extra
	}
	if cut > 0 {
		b, cut = w.afterCut(b, cut)
	}
	line := strings.TrimRight(string(b), "\r")
	w.buf, w.cut = w.buf[:0], 0
	if cap(w.buf) > 2*w.max {
		w.buf = nil
	}
	if cut > 0 {
		mark := fmt.Sprintf("[line cut: first %d bytes dropped]", cut)
		if line == "" {
			line = mark
		} else {
			line = mark + " " + line
		}
	}
	return line
}

// afterCut drops the front of a line cut at its start: the word the cut
// fell in, which may be an unknown secret, or the end of a known secret
// the cut fell in when longer (a secret of several words leaves more than
// a word). Without the secret's start the masker would not recognise its
// end. (Blanks are ASCII, so this starts on a UTF-8 boundary too.)
func (w *stderrWatcher) afterCut(b []byte, cut int) ([]byte, int) {
	skip := len(b) // no blank: the whole rest is that word
	if i := bytes.IndexAny(b, " \t"); i >= 0 {
		skip = i + 1
	}
	if t, ok := w.out.(interface{ TailLen([]byte) int }); ok {
		skip = max(skip, t.TailLen(b))
	}
	for skip < len(b) && (b[skip] == ' ' || b[skip] == '\t') {
		skip++
	}
	return b[skip:], cut + skip
}

// line handles one complete line; w.mu is held.
func (w *stderrWatcher) line(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if w.panic == "" && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		w.panic = line
		if i := strings.Index(w.panic, " [recovered]"); i > 0 {
			w.panic = w.panic[:i]
		}
	}
	w.last = line
	fmt.Fprintf(w.out, "%s: %s\n", w.name, line)
}

func (w *stderrWatcher) reset() {
	w.mu.Lock()
	w.panic, w.last, w.exit, w.buf, w.cut = "", "", "", nil, 0
	w.mu.Unlock()
}

func (w *stderrWatcher) panicLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.panic
}

func (w *stderrWatcher) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// exitWriter receives go-plugin's JSON log and keeps the exit status of the
// plugin process.
func (w *stderrWatcher) exitWriter() io.Writer { return exitLog{w} }

type exitLog struct{ w *stderrWatcher }

func (l exitLog) Write(b []byte) (int, error) {
	if !bytes.Contains(b, []byte("plugin process exited")) {
		return len(b), nil
	}
	var rec struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &rec) == nil && rec.Error != "" {
		l.w.mu.Lock()
		l.w.exit = rec.Error
		l.w.mu.Unlock()
	}
	return len(b), nil
}

func (w *stderrWatcher) exitStatus() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exit
}

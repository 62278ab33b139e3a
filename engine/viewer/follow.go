package viewer

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
)

// hub follows each run that has event-stream clients: one follower per
// run, whatever the number of clients, each message encoded once and
// shared by all of them.
type hub struct {
	s      *Server
	mu     sync.Mutex
	runs   map[string]*follower
	closed bool
}

func newHub(s *Server) *hub { return &hub{s: s, runs: map[string]*follower{}} }

// clientBuffer is how many messages a client may lag behind before it is
// dropped (its browser reconnects and catches up).
const clientBuffer = 64

// client is one event stream. ch is closed when the client is dropped.
type client struct {
	ch chan []byte
}

// follower follows one run's journal (and event log, for logs and
// progress) and fans its changes out to its clients.
type follower struct {
	h    *hub
	id   string
	stop chan struct{}

	mu      sync.Mutex // guards what follows
	clients map[*client]bool
	st      *journal.State
	sigs    map[string]string // address → signature of what is shown
	changed map[string]int64  // address → seq of the record that last changed it
	runSig  string
	idle    time.Time // when the journal last changed
	next    session.Commands
	nextFor string // the run state next was asked for

	// read by the following goroutine only
	recs     []*journal.Record
	offset   int64 // bytes of the journal read
	seen     int64 // journal size at the last read
	ticks    int   // polls, for a store that is not local
	evOffset int64 // bytes of the event log read
	progress map[string]*progress
}

// subscribe adds a client to run id's follower (starting it). since is the
// journal seq the client has seen: steps changed after it are sent at once.
func (h *hub) subscribe(id string, since int64) (*client, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errors.New("server closing")
	}
	f := h.runs[id]
	if f == nil {
		f = &follower{h: h, id: id, stop: make(chan struct{}), clients: map[*client]bool{},
			sigs: map[string]string{}, changed: map[string]int64{}, progress: map[string]*progress{}}
		f.evOffset = fileSize(f.eventLog())
		f.poll(false)
		h.runs[id] = f
		go f.follow()
	}
	c := &client{ch: make(chan []byte, clientBuffer)}
	f.mu.Lock()
	f.clients[c] = true
	f.catchUp(c, since)
	f.mu.Unlock()
	return c, func() { h.unsubscribe(f, c) }, nil
}

func (h *hub) unsubscribe(f *follower, c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.mu.Lock()
	if f.clients[c] {
		delete(f.clients, c)
		close(c.ch)
	}
	n := len(f.clients)
	f.mu.Unlock()
	if n == 0 && h.runs[f.id] == f {
		delete(h.runs, f.id)
		close(f.stop)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, f := range h.runs {
		close(f.stop)
		f.mu.Lock()
		for c := range f.clients {
			delete(f.clients, c)
			close(c.ch)
		}
		f.mu.Unlock()
		delete(h.runs, id)
	}
}

// followers is how many runs are followed (tests).
func (h *hub) followers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.runs)
}

func (f *follower) follow() {
	t := time.NewTicker(f.h.s.opts.Poll)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.poll(true)
			f.pollEvents()
		}
	}
}

func (f *follower) local() (*journal.LocalStore, bool) {
	ls, ok := f.h.s.opts.Store.(*journal.LocalStore)
	return ls, ok
}

func (f *follower) eventLog() string {
	if ls, ok := f.local(); ok {
		return filepath.Join(ls.Location(f.id), EventLogFile)
	}
	return ""
}

func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// load returns the run's state when its journal changed (nil otherwise).
// A local journal is read from where the last read stopped; another store
// is loaded again when its last seq moved.
func (f *follower) load() *journal.State {
	ls, ok := f.local()
	if !ok {
		// Another store (a database) is asked about once a second.
		if f.ticks++; f.st != nil && f.ticks%5 != 0 {
			return nil
		}
		st, err := f.h.s.opts.Store.Load(f.id)
		if err != nil || (f.st != nil && st.Seq == f.st.Seq && st.State == f.st.State) {
			return nil
		}
		return st
	}
	path := filepath.Join(ls.Location(f.id), "journal.ndjson")
	size := fileSize(path)
	if size == f.seen { // unchanged (a corrupt journal is not read again)
		return nil
	}
	f.seen = size
	if size < f.offset { // a torn tail was cut (resume): read it all again
		f.offset, f.recs = 0, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		return nil
	}
	recs, valid, _, err := journal.ReadRecords(io.LimitReader(fh, size-f.offset))
	var ce *journal.CorruptError
	if err != nil && !errors.As(err, &ce) {
		return nil
	}
	if len(recs) == 0 && ce == nil && f.st != nil {
		return nil // only a record being written: wait for its end
	}
	f.recs = append(f.recs, recs...)
	f.offset += valid
	st := journal.Replay(f.recs)
	if ce != nil || len(f.recs) == 0 || f.recs[0].Meta == nil {
		// The page says so; Store.Load has the details.
		if full, err := ls.Load(f.id); err == nil {
			return full
		}
	}
	return st
}

// poll reads what changed and, with send, sends it to the clients.
func (f *follower) poll(send bool) {
	st := f.load()
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == nil {
		// A run the journal says is running but whose process died is
		// interrupted: the session layer knows (lock liveness). Asked when
		// the journal has been quiet for a while.
		if f.st != nil && (f.st.State == journal.RunRunning || f.st.State == journal.RunRollingBack) &&
			now.Sub(f.idle) > 2*time.Second {
			f.idle = now
			if ri, err := f.h.s.runInfo(f.id); err == nil {
				f.sendRun(ri, send)
			}
		}
		return
	}
	f.idle = now
	if st.Meta == nil {
		st.Meta = &journal.Meta{ID: f.id}
	}
	f.st = st
	rb := f.h.s.runbook(st.Meta)
	for _, a := range st.Order {
		sv := stepView(st.Steps[a], rb, st.State)
		b, _ := json.Marshal(sv)
		sig := string(b)
		if f.sigs[a] == sig {
			continue
		}
		f.sigs[a] = sig
		f.changed[a] = st.Seq
		if send {
			f.broadcast(message("step", st.Seq, b))
		}
	}
	if f.nextFor != st.State {
		f.next, f.nextFor = f.h.s.next(st), st.State
	}
	f.sendRun(&session.RunInfo{State: st, Next: f.next}, send)
}

// sendRun sends the run's summary when it changed.
func (f *follower) sendRun(ri *session.RunInfo, send bool) {
	b, _ := json.Marshal(summary(ri, ri.State.Updated))
	if string(b) == f.runSig {
		return
	}
	f.runSig = string(b)
	if send {
		f.broadcast(message("run", ri.State.Seq, b))
	}
}

// catchUp sends c what changed after seq since (everything when since is
// 0 and the run is small; a reload when too much changed).
func (f *follower) catchUp(c *client, since int64) {
	if f.st == nil {
		return
	}
	n := 0
	for _, seq := range f.changed {
		if seq > since {
			n++
		}
	}
	if n > clientBuffer-2 {
		c.ch <- message("reload", f.st.Seq, []byte(`{}`))
		return
	}
	rb := f.h.s.runbook(f.st.Meta)
	for _, a := range f.st.Order {
		if f.changed[a] > since {
			b, _ := json.Marshal(stepView(f.st.Steps[a], rb, f.st.State))
			c.ch <- message("step", f.st.Seq, b)
		}
	}
	c.ch <- message("run", f.st.Seq, []byte(f.runSig))
}

// broadcast sends msg to every client; one too far behind is dropped
// (its EventSource reconnects and catches up). Called with f.mu held.
func (f *follower) broadcast(msg []byte) {
	for c := range f.clients {
		select {
		case c.ch <- msg:
		default:
			delete(f.clients, c)
			close(c.ch)
		}
	}
}

// message is one server-sent event.
func message(event string, seq int64, data []byte) []byte {
	b := make([]byte, 0, len(data)+48)
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

// next is how to continue a run in state st (as the session says).
func (s *Server) next(st *journal.State) session.Commands {
	if st.Meta == nil {
		return session.Commands{}
	}
	ri, err := s.runInfo(st.Meta.ID)
	if err != nil {
		return session.Commands{}
	}
	return ri.Next
}

// pollEvents forwards new log lines and progress of the run's event log.
func (f *follower) pollEvents() {
	path := f.eventLog()
	size := fileSize(path)
	if size <= f.evOffset {
		return
	}
	evs, n := readEvents(path, f.evOffset, size)
	f.evOffset += n
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range evs {
		if b := f.logMessage(e); b != nil {
			f.broadcast(b)
		}
	}
}

func (f *follower) logMessage(e *logEvent) []byte {
	seq := int64(0)
	if f.st != nil {
		seq = f.st.Seq
	}
	switch e.Type {
	case "step_log":
		b, _ := json.Marshal(LogLine{Time: e.Time, Step: e.Step, Level: e.Level, Message: e.Message})
		return message("log", seq, b)
	case "step_progress":
		p := f.progress[e.Step]
		if p == nil {
			p = &progress{}
			f.progress[e.Step] = p
		}
		b, _ := json.Marshal(p.update(e))
		return message("progress", seq, b)
	}
	return nil
}

// Followers is how many runs are being followed for event-stream clients:
// one per run, however many clients watch it.
func (s *Server) Followers() int { return s.hub.followers() }

package sdk

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
)

// Calls serves many Apply and Undo calls over one stream (see plugin.proto).
// Each call runs on a goroutine of its own (reused by later calls) with its
// own context, cancelled by the call's Cancel message or when the stream
// ends; events of all calls are serialised onto the stream.
func (s *grpcServer) Calls(stream pb.Plugin_CallsServer) error {
	sess := &serverSession{stream: stream, life: s.life, calls: map[uint64]*serverCall{},
		work: make(chan func()), quit: make(chan struct{})}
	defer close(sess.quit)
	defer sess.wg.Wait()
	defer sess.cancelAll()
	for {
		m, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch msg := m.Msg.(type) {
		case *pb.CallMessage_Apply:
			sess.start(m.Call, func(ctx context.Context, ev Events) *pb.Event {
				return s.apply(ctx, msg.Apply, ev)
			})
		case *pb.CallMessage_Undo:
			sess.start(m.Call, func(ctx context.Context, ev Events) *pb.Event {
				return s.undo(ctx, msg.Undo, ev)
			})
		case *pb.CallMessage_Ack:
			if c := sess.get(m.Call); c != nil {
				c.ev.ack(msg.Ack)
			}
		case *pb.CallMessage_Cancel:
			if c := sess.get(m.Call); c != nil {
				c.cancel()
			}
		}
	}
}

// serverSession is the plugin side of one Calls stream.
type serverSession struct {
	stream pb.Plugin_CallsServer
	life   *lifetime
	wg     sync.WaitGroup // running calls

	sendMu sync.Mutex // serialises Send on stream (gRPC allows one sender)

	mu sync.Mutex // guards calls
	// calls are the running calls by id; a call leaves when its Result is
	// sent.
	calls map[uint64]*serverCall

	// work hands a call to a goroutine that has finished its previous one
	// (unbuffered: a send succeeds only if one waits). A fresh goroutine
	// per call grew its stack through gRPC, msgpack and cty every time:
	// a sixth of a small call's CPU. Idle goroutines exit when quit is
	// closed, after the last call of the session.
	work chan func()
	quit chan struct{}
}

// run runs f on an idle call goroutine, or on a new one.
func (s *serverSession) run(f func()) {
	select {
	case s.work <- f:
	default:
		go s.worker(f)
	}
}

func (s *serverSession) worker(f func()) {
	for {
		f()
		select {
		case f = <-s.work:
		case <-s.quit:
			return
		}
	}
}

type serverCall struct {
	ev     *serverEvents
	cancel context.CancelFunc
}

func (s *serverSession) get(id uint64) *serverCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// start runs a call. A repeated id is a protocol error of the engine: the
// call is answered with an error and the running one is left alone.
func (s *serverSession) start(id uint64, run func(context.Context, Events) *pb.Event) {
	ctx, done := s.life.call(s.stream.Context())
	ctx, cancel := context.WithCancel(ctx)
	c := &serverCall{cancel: cancel}
	c.ev = newServerEvents(callStream{s: s, id: id, ctx: ctx})
	s.mu.Lock()
	_, dup := s.calls[id]
	if !dup {
		s.calls[id] = c
	}
	s.mu.Unlock()
	if dup {
		cancel()
		done()
		_ = c.ev.send(resultEvent(nil, &Error{Kind: KindInternal, Err: errors.New("call id already in use")}))
		return
	}
	s.wg.Add(1)
	s.run(func() {
		defer s.wg.Done()
		defer done()
		defer cancel()
		res := run(ctx, c.ev)
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
		_ = c.ev.send(res)
	})
}

// cancelAll cancels every running call (the stream ended).
func (s *serverSession) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		c.cancel()
	}
}

// callStream is one call's view of the session, for serverEvents.
type callStream struct {
	s   *serverSession
	id  uint64
	ctx context.Context
}

func (c callStream) Send(e *pb.Event) error {
	c.s.sendMu.Lock()
	defer c.s.sendMu.Unlock()
	return c.s.stream.Send(&pb.CallEvent{Call: c.id, Event: e})
}

func (c callStream) Context() context.Context { return c.ctx }

package sdk

import (
	"context"
	"errors"
	"io"
	"sync"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The engine side of the Calls stream (see plugin.proto): one long-lived
// stream per provider carries every Apply and Undo. A reader goroutine
// hands each event to its call's queue, so a slow call never holds up the
// others; each call is then driven by runStream exactly like a stream of
// its own.

// clientSession is the engine side of one Calls stream.
type clientSession struct {
	stream pb.Plugin_CallsClient
	end    context.CancelFunc // ends the stream

	sendMu sync.Mutex // serialises Send on stream

	mu sync.Mutex // guards next, calls and err
	// next is the last call id used.
	next uint64
	// calls are the calls waiting for their Result, by id.
	calls map[uint64]*clientCall
	// err is set once the stream broke; the session is then dead and a
	// new one is opened for the next call.
	err error
}

// session returns the provider's live session, opening one if needed.
func (g *grpcProvider) session() (*clientSession, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.sess; s != nil && s.alive() {
		return s, nil
	}
	ctx, end := context.WithCancel(context.Background())
	stream, err := g.c.Calls(ctx)
	if err != nil {
		end()
		return nil, err
	}
	s := &clientSession{stream: stream, end: end, calls: map[uint64]*clientCall{}}
	go s.read()
	g.sess = s
	return s, nil
}

func (s *clientSession) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil
}

// read routes events to their calls until the stream ends.
func (s *clientSession) read() {
	for {
		m, err := s.stream.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		c := s.calls[m.Call]
		if c != nil && m.Event.GetResult() != nil {
			delete(s.calls, m.Call)
		}
		s.mu.Unlock()
		if c != nil { // else: a call given up on (hard stop)
			c.push(m.Event)
		}
	}
}

// fail ends the session: every waiting call gets err.
func (s *clientSession) fail(err error) {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	calls := s.calls
	s.calls = nil
	s.mu.Unlock()
	s.end()
	for _, c := range calls {
		c.fail(err)
	}
}

func (s *clientSession) send(m *pb.CallMessage) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// open starts a call: registers it and sends its first message (apply or
// undo, without the call id, which open fills in). ctx is the call's hard
// stop.
func (s *clientSession) open(ctx context.Context, first *pb.CallMessage) (*clientCall, error) {
	c := &clientCall{sess: s, ctx: ctx, ready: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.next++
	c.id = s.next
	s.calls[c.id] = c
	s.mu.Unlock()
	first.Call = c.id
	if err := s.send(first); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream is over; its status (for example Unimplemented)
			// comes with the reader's failure.
			if _, rerr := c.Recv(); rerr != nil {
				err = rerr
			}
		}
		c.close()
		return nil, err
	}
	return c, nil
}

// clientCall is one call on a session, seen by runStream as a stream.
type clientCall struct {
	sess  *clientSession
	id    uint64
	ctx   context.Context
	ready chan struct{} // signalled (non-blocking) after each push or fail

	mu sync.Mutex // guards queue, ended and err
	// queue holds the events not yet read, in order.
	queue []*pb.Event
	// ended is set when the Result was queued: after it, Recv gives io.EOF.
	ended bool
	// err is set when the session broke before the Result.
	err error
}

var _ clientStream = (*clientCall)(nil)

func (c *clientCall) push(e *pb.Event) {
	c.mu.Lock()
	c.queue = append(c.queue, e)
	if e.GetResult() != nil {
		c.ended = true
	}
	c.mu.Unlock()
	c.signal()
}

func (c *clientCall) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	c.signal()
}

func (c *clientCall) signal() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

func (c *clientCall) Recv() (*pb.Event, error) {
	for {
		c.mu.Lock()
		switch {
		case len(c.queue) > 0:
			e := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.mu.Unlock()
			return e, nil
		case c.ended:
			c.mu.Unlock()
			return nil, io.EOF
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		c.mu.Unlock()
		select {
		case <-c.ready:
		case <-c.ctx.Done():
			return nil, c.ctx.Err()
		}
	}
}

func (c *clientCall) sendAck(a *pb.CheckpointAck) error {
	return c.sess.send(&pb.CallMessage{Call: c.id, Msg: &pb.CallMessage_Ack{Ack: a}})
}

func (c *clientCall) sendCancel() error {
	return c.sess.send(&pb.CallMessage{Call: c.id, Msg: &pb.CallMessage_Cancel{Cancel: &pb.Cancel{}}})
}

// close forgets the call; events still arriving for it are dropped.
func (c *clientCall) close() {
	c.sess.mu.Lock()
	delete(c.sess.calls, c.id)
	c.sess.mu.Unlock()
}

// unimplemented tells a plugin without Calls (an older SDK) apart.
func unimplemented(err error) bool {
	return status.Code(err) == codes.Unimplemented
}

package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/zclconf/go-cty/cty"
)

// CancelGrace is how long a cancelled Apply or Undo waits for the plugin's
// final Result (with its partial undo state) before the stream is cut.
var CancelGrace = 10 * time.Second

// NewGRPCProvider returns a Provider that calls a plugin over gRPC. Results
// carry the same values, marks, diagnostics and classified errors as Local.
// A transport failure is returned as a plain (unclassified) error wrapping
// the gRPC status; engine/pluginhost turns it into a crash report.
func NewGRPCProvider(c pb.PluginClient) Provider { return &grpcProvider{c: c} }

// NewGRPCProviderPerCall is NewGRPCProvider without the Calls stream: every
// Apply and Undo opens a stream of its own, as with plugins that lack Calls.
func NewGRPCProviderPerCall(c pb.PluginClient) Provider {
	g := &grpcProvider{c: c}
	g.perCall.Store(true)
	return g
}

type grpcProvider struct {
	c pb.PluginClient
	// perCall is set once the plugin answered Calls with Unimplemented.
	perCall atomic.Bool

	mu   sync.Mutex     // guards sess
	sess *clientSession // the Calls stream, opened on first use
}

var _ Provider = (*grpcProvider)(nil)

// TransportError is a failure of the connection to the plugin (the plugin
// crashed, exited or is unreachable), as opposed to an action failing.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("plugin %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

func (g *grpcProvider) Schema(ctx context.Context) (*PluginSchema, error) {
	r, err := g.c.GetSchema(ctx, &pb.GetSchemaRequest{})
	if err != nil {
		return nil, &TransportError{Op: "get schema", Err: err}
	}
	return DecodeSchema(r)
}

func (g *grpcProvider) Validate(ctx context.Context, action string, inputs cty.Value) (Diagnostics, error) {
	in, err := EncodeValue(inputs)
	if err != nil {
		return nil, err
	}
	r, err := g.c.Validate(ctx, &pb.ValidateRequest{Action: action, Inputs: in})
	if err != nil {
		return nil, &TransportError{Op: "validate", Err: err}
	}
	return DecodeDiagnostics(r.Diagnostics), DecodeError(r.Error)
}

func (g *grpcProvider) Plan(ctx context.Context, action string, req *PlanRequest) (*PlanResult, error) {
	in, err := EncodeValue(req.Inputs)
	if err != nil {
		return nil, err
	}
	r, err := g.c.Plan(ctx, &pb.PlanRequest{Action: action, Inputs: in})
	if err != nil {
		return nil, &TransportError{Op: "plan", Err: err}
	}
	var res *PlanResult
	if r.HasPlan {
		res = &PlanResult{Summary: r.Summary, Counts: r.Counts, Warnings: r.Warnings, Details: r.Details}
	}
	return res, DecodeError(r.Error)
}

func (g *grpcProvider) Apply(ctx context.Context, action string, req *ApplyRequest, ev Events) (*Result, error) {
	in, err := EncodeValue(MarkPaths(req.Inputs, req.Sensitive))
	if err != nil {
		return nil, err
	}
	start := &pb.ApplyStart{
		Action: action, Inputs: in, IdempotencyKey: req.IdempotencyKey, Checkpoint: req.Checkpoint,
	}
	if !g.perCall.Load() {
		res, err := runStream(ctx, "apply", ev, g.openCall(&pb.CallMessage{Msg: &pb.CallMessage_Apply{Apply: start}}))
		if !g.fallBack(err) {
			return res, err
		}
	}
	return runStream(ctx, "apply", ev,
		func(sctx context.Context) (clientStream, error) {
			s, err := g.c.Apply(sctx)
			if err != nil {
				return nil, err
			}
			return applyStream{s}, s.Send(&pb.ApplyMessage{Msg: &pb.ApplyMessage_Start{Start: start}})
		})
}

// openCall opens a call on the Calls stream.
func (g *grpcProvider) openCall(first *pb.CallMessage) func(context.Context) (clientStream, error) {
	return func(sctx context.Context) (clientStream, error) {
		sess, err := g.session()
		if err != nil {
			return nil, err
		}
		c, err := sess.open(sctx, first)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// fallBack reports whether err says the plugin has no Calls, remembering it:
// the call was then never started and is retried on a stream of its own.
func (g *grpcProvider) fallBack(err error) bool {
	var te *TransportError
	if !errors.As(err, &te) || !unimplemented(te.Err) {
		return false
	}
	g.perCall.Store(true)
	return true
}

func (g *grpcProvider) Undo(ctx context.Context, action string, req *UndoRequest, ev Events) error {
	in, err := EncodeValue(req.Inputs)
	if err != nil {
		return err
	}
	out, err := EncodeValue(req.Outputs)
	if err != nil {
		return err
	}
	start := &pb.UndoStart{
		Action: action, Inputs: in, Outputs: out, UndoState: req.UndoState,
		IdempotencyKey: req.IdempotencyKey, Checkpoint: req.Checkpoint,
	}
	if !g.perCall.Load() {
		_, err := runStream(ctx, "undo", ev, g.openCall(&pb.CallMessage{Msg: &pb.CallMessage_Undo{Undo: start}}))
		if !g.fallBack(err) {
			return err
		}
	}
	_, err = runStream(ctx, "undo", ev,
		func(sctx context.Context) (clientStream, error) {
			s, err := g.c.Undo(sctx)
			if err != nil {
				return nil, err
			}
			return undoStream{s}, s.Send(&pb.UndoMessage{Msg: &pb.UndoMessage_Start{Start: start}})
		})
	return err
}

// clientStream is the client side of Apply or Undo.
type clientStream interface {
	Recv() (*pb.Event, error)
	sendAck(*pb.CheckpointAck) error
	sendCancel() error
}

type applyStream struct{ pb.Plugin_ApplyClient }

func (s applyStream) sendAck(a *pb.CheckpointAck) error {
	return s.Send(&pb.ApplyMessage{Msg: &pb.ApplyMessage_Ack{Ack: a}})
}
func (s applyStream) sendCancel() error {
	return s.Send(&pb.ApplyMessage{Msg: &pb.ApplyMessage_Cancel{Cancel: &pb.Cancel{}}})
}

type undoStream struct{ pb.Plugin_UndoClient }

func (s undoStream) sendAck(a *pb.CheckpointAck) error {
	return s.Send(&pb.UndoMessage{Msg: &pb.UndoMessage_Ack{Ack: a}})
}
func (s undoStream) sendCancel() error {
	return s.Send(&pb.UndoMessage{Msg: &pb.UndoMessage_Cancel{Cancel: &pb.Cancel{}}})
}

// runStream drives one Apply or Undo stream: events go to ev, checkpoints
// are acknowledged after ev.Checkpoint returned, and cancellation of ctx is
// sent as a Cancel message, the stream itself being cut CancelGrace later.
func runStream(ctx context.Context, op string, ev Events, open func(context.Context) (clientStream, error)) (*Result, error) {
	if ev == nil {
		ev = NopEvents{}
	}
	graceDur := CancelGrace
	sctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	s, err := open(sctx)
	if c, ok := s.(interface{ close() }); ok {
		defer c.close()
	}
	if err != nil {
		if s != nil && errors.Is(err, io.EOF) {
			// The server closed the stream at once; Recv gives the status.
			_, err = s.Recv()
		}
		return nil, &TransportError{Op: op, Err: err}
	}
	// sendMu serialises Send between acks (this goroutine) and the cancel
	// callback, and guards grace.
	var sendMu sync.Mutex
	var grace *time.Timer // cuts the stream CancelGrace after a cancel
	stop := context.AfterFunc(ctx, func() {
		sendMu.Lock()
		defer sendMu.Unlock()
		_ = s.sendCancel()
		grace = time.AfterFunc(graceDur, cut)
	})
	defer func() {
		if !stop() {
			// The callback ran or is running; the stream is over, so
			// its timer has nothing left to cut. (A callback that has
			// not taken the lock yet only cuts a finished stream.)
			sendMu.Lock()
			if grace != nil {
				grace.Stop()
			}
			sendMu.Unlock()
		}
	}()
	for {
		e, err := s.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil, &Error{Kind: KindCancelled, Err: fmt.Errorf("%s cancelled: %w", op, ctx.Err())}
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, &TransportError{Op: op, Err: err}
		}
		switch e := e.Event.(type) {
		case *pb.Event_Log:
			ev.Log(Level(e.Log.Level), e.Log.Message)
		case *pb.Event_Progress:
			ev.Progress(e.Progress.Current, e.Progress.Total, e.Progress.Unit)
		case *pb.Event_Checkpoint:
			ack := &pb.CheckpointAck{Seq: e.Checkpoint.Seq}
			if err := ev.Checkpoint(e.Checkpoint.Data); err != nil {
				ack.Error = err.Error()
			}
			sendMu.Lock()
			err := s.sendAck(ack)
			sendMu.Unlock()
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, &TransportError{Op: op, Err: err}
			}
		case *pb.Event_Result:
			// Read the stream's end (trailers) so it finishes cleanly
			// without a reset frame; the plugin returns right after its
			// Result.
			_, _ = s.Recv()
			return decodeResult(e.Result)
		}
	}
}

func decodeResult(r *pb.Result) (*Result, error) {
	err := DecodeError(r.Error)
	if !r.HasResult {
		return nil, err
	}
	out, derr := DecodeMarkedValue(r.Outputs)
	if derr != nil && err == nil {
		err = &Error{Kind: KindInternal, Err: derr}
	}
	return &Result{Outputs: out, UndoState: r.UndoState}, err
}

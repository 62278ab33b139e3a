// Package pluginclient is the host's side of the plugin protocol: a
// sdk.Provider that calls a plugin over gRPC, and the decoders of what the
// plugin sends. engine/pluginhost and sdktest use it; plugin authors never
// see it.
package pluginclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/sdk"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/zclconf/go-cty/cty"
)

// CancelGrace is how long a cancelled Apply or Undo waits for the plugin's
// final Result (with its partial undo state) before the stream is cut.
var CancelGrace = 10 * time.Second

// New returns a Provider that calls a plugin over gRPC, each Apply and
// Undo on a stream of its own. Results carry the same values, marks,
// diagnostics and classified errors as sdk.Local. A transport failure is
// returned as a *TransportError wrapping the gRPC status; engine/pluginhost
// turns it into a crash report.
func New(c pb.PluginClient) sdk.Provider { return &grpcProvider{c: c} }

type grpcProvider struct {
	c pb.PluginClient
}

var _ sdk.Provider = (*grpcProvider)(nil)

// TransportError is a failure of the connection to the plugin (the plugin
// crashed, exited or is unreachable), as opposed to an action failing.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("plugin %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

func (g *grpcProvider) Schema(ctx context.Context) (*sdk.PluginSchema, error) {
	r, err := g.c.GetSchema(ctx, &pb.GetSchemaRequest{})
	if err != nil {
		return nil, &TransportError{Op: "get schema", Err: err}
	}
	return decodeSchema(r)
}

func (g *grpcProvider) Validate(ctx context.Context, action string, inputs cty.Value) (sdk.Diagnostics, error) {
	in, err := pluginwire.EncodeValue(inputs)
	if err != nil {
		return nil, err
	}
	r, err := g.c.Validate(ctx, &pb.ValidateRequest{Action: action, Inputs: in})
	if err != nil {
		return nil, &TransportError{Op: "validate", Err: err}
	}
	return decodeDiagnostics(r.Diagnostics), decodeError(r.Error)
}

func (g *grpcProvider) Plan(ctx context.Context, action string, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	in, err := pluginwire.EncodeValue(req.Inputs)
	if err != nil {
		return nil, err
	}
	r, err := g.c.Plan(ctx, &pb.PlanRequest{Action: action, Inputs: in})
	if err != nil {
		return nil, &TransportError{Op: "plan", Err: err}
	}
	var res *sdk.PlanResult
	if r.HasPlan {
		res = &sdk.PlanResult{Summary: r.Summary, Counts: r.Counts, Warnings: r.Warnings, Details: r.Details}
	}
	return res, decodeError(r.Error)
}

func (g *grpcProvider) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in, err := pluginwire.EncodeValue(pluginwire.MarkPaths(req.Inputs, req.Sensitive))
	if err != nil {
		return nil, err
	}
	start := &pb.ApplyStart{
		Action: action, Inputs: in, IdempotencyKey: req.IdempotencyKey, Checkpoint: req.Checkpoint,
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

func (g *grpcProvider) Undo(ctx context.Context, action string, req *sdk.UndoRequest, ev sdk.Events) error {
	in, err := pluginwire.EncodeValue(req.Inputs)
	if err != nil {
		return err
	}
	out, err := pluginwire.EncodeValue(req.Outputs)
	if err != nil {
		return err
	}
	start := &pb.UndoStart{
		Action: action, Inputs: in, Outputs: out, UndoState: req.UndoState,
		IdempotencyKey: req.IdempotencyKey, Checkpoint: req.Checkpoint, Force: req.Force,
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
func runStream(ctx context.Context, op string, ev sdk.Events, open func(context.Context) (clientStream, error)) (*sdk.Result, error) {
	if ev == nil {
		ev = sdk.NopEvents{}
	}
	graceDur := CancelGrace
	sctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	s, err := open(sctx)
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
				return nil, &sdk.Error{Kind: sdk.KindCancelled, Err: fmt.Errorf("%s cancelled: %w", op, ctx.Err())}
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, &TransportError{Op: op, Err: err}
		}
		switch e := e.Event.(type) {
		case *pb.Event_Log:
			ev.Log(sdk.Level(e.Log.Level), e.Log.Message)
		case *pb.Event_Progress:
			ev.Progress(e.Progress.Current, e.Progress.Total, e.Progress.Unit)
		case *pb.Event_Checkpoint:
			ack := &pb.CheckpointAck{Seq: e.Checkpoint.Seq}
			record := ev.Checkpoint
			if e.Checkpoint.Sensitive {
				record = func(b []byte) error { return sdk.CheckpointSensitive(ev, b) }
			}
			if err := record(e.Checkpoint.Data); err != nil {
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

func decodeResult(r *pb.Result) (*sdk.Result, error) {
	err := decodeError(r.Error)
	if !r.HasResult {
		return nil, err
	}
	out, derr := pluginwire.DecodeMarkedValue(r.Outputs)
	if derr != nil && err == nil {
		err = &sdk.Error{Kind: sdk.KindInternal, Err: derr}
	}
	return &sdk.Result{Outputs: out, UndoState: r.UndoState, SensitiveUndoState: r.SensitiveUndoState}, err
}

package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginwire"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"google.golang.org/grpc"
)

// SDKVersion is the version of this SDK, reported in GetSchema.
const SDKVersion = "0.1.0"

// Serve serves p over gRPC to the runbook engine and returns when the engine
// is done with it. Call it from the plugin's main:
//
//	func main() { sdk.Serve(hello.New()) }
//
// Serve first checks p (Check) and runs its Configure hook; if either
// fails it prints the error and exits with status 1. Once the engine is done
// it runs p's Close hook.
func Serve(p *Plugin) {
	cfg, srv := serveConfig(p)
	if err := srv.local.configure(); err != nil {
		fmt.Fprintf(os.Stderr, "plugin %s: %v\n", p.Name, err)
		os.Exit(1)
	}
	go srv.life.watchEngine(srv.local.close)
	plugin.Serve(cfg)
	srv.life.drain(StopGrace)
	if err := srv.local.close(); err != nil {
		fmt.Fprintf(os.Stderr, "plugin %s: close: %v\n", p.Name, err)
	}
}

// ServeConfig is the go-plugin configuration Serve uses, for tests that
// serve p themselves (e.g. with ServeConfig.Test for reattaching, or by
// registering its plugin's GRPCServer on a server of their own). p's
// Configure hook then runs before the first call, and its Close hook never.
func ServeConfig(p *Plugin) *plugin.ServeConfig {
	cfg, _ := serveConfig(p)
	return cfg
}

func serveConfig(p *Plugin) (*plugin.ServeConfig, *grpcServer) {
	srv := &grpcServer{local: newLocal(p), life: newLifetime()}
	return &plugin.ServeConfig{
		HandshakeConfig: pluginwire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			pluginwire.ProtocolVersion: {pluginwire.PluginKey: serverPlugin{srv: srv}},
		},
		// No TLSProvider: go-plugin's AutoMTLS (the engine sets it) makes
		// fresh keys for every launch, each side trusting only the other.
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, pluginwire.ServerOptions()...)...)
		},
		// go-plugin's own debug chatter would end up in every run log.
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	}, srv
}

// serverPlugin is the plugin half of the go-plugin plugin (the host's half
// is internal/pluginclient).
type serverPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *grpcServer
}

var _ plugin.GRPCPlugin = serverPlugin{}

// GRPCServer registers the plugin's gRPC service.
func (g serverPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if err := g.srv.local.check(); err != nil {
		return err
	}
	pb.RegisterPluginServer(s, g.srv)
	return nil
}

func (serverPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: a plugin serves; the host's client is internal/pluginclient")
}

type grpcServer struct {
	pb.UnimplementedPluginServer
	// local drives the plugin's actions: conversion, checks and panic
	// recovery are the same in-process and over the wire.
	local *local
	// life gives every Apply and Undo its context and counts them.
	life *lifetime
}

func (s *grpcServer) GetSchema(ctx context.Context, _ *pb.GetSchemaRequest) (*pb.GetSchemaResponse, error) {
	sch, err := s.local.Schema(ctx)
	if err != nil {
		return nil, err
	}
	return encodeSchema(sch)
}

func (s *grpcServer) Validate(ctx context.Context, req *pb.ValidateRequest) (*pb.ValidateResponse, error) {
	in, err := pluginwire.DecodeMarkedValue(req.Inputs)
	if err != nil {
		return &pb.ValidateResponse{Error: encodeError(&Error{Kind: KindInternal, Err: err})}, nil
	}
	d, err := s.local.Validate(ctx, req.Action, in)
	return &pb.ValidateResponse{Diagnostics: encodeDiagnostics(d), Error: encodeError(err)}, nil
}

func (s *grpcServer) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	in, err := pluginwire.DecodeMarkedValue(req.Inputs)
	if err != nil {
		return &pb.PlanResponse{Error: encodeError(&Error{Kind: KindInternal, Err: err})}, nil
	}
	r, err := s.local.Plan(ctx, req.Action, &PlanRequest{Inputs: in})
	resp := &pb.PlanResponse{Error: encodeError(err)}
	if r != nil {
		resp.HasPlan = true
		resp.Summary, resp.Counts, resp.Warnings, resp.Details = r.Summary, r.Counts, r.Warnings, r.Details
	}
	return resp, nil
}

// eventStream is what Apply and Undo streams have in common.
type eventStream interface {
	Send(*pb.Event) error
	Context() context.Context
}

// serverEvents implements Events over a stream. Send is serialised by mu
// (gRPC streams do not allow concurrent Send); acks are routed to the
// waiting Checkpoint call by sequence number.
type serverEvents struct {
	stream eventStream

	mu sync.Mutex // guards Send on stream, seq and waiters
	// seq is the last checkpoint sequence number sent.
	seq uint64
	// waiters maps a checkpoint seq to the channel its ack is delivered on.
	waiters map[uint64]chan string
}

func newServerEvents(stream eventStream) *serverEvents {
	return &serverEvents{stream: stream, waiters: map[uint64]chan string{}}
}

func (e *serverEvents) send(ev *pb.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stream.Send(ev)
}

func (e *serverEvents) Log(level Level, msg string) {
	_ = e.send(&pb.Event{Event: &pb.Event_Log{Log: &pb.Log{Level: int32(level), Message: msg}}})
}

func (e *serverEvents) Progress(current, total int64, unit string) {
	_ = e.send(&pb.Event{Event: &pb.Event_Progress{Progress: &pb.Progress{Current: current, Total: total, Unit: unit}}})
}

// Checkpoint sends the data and waits for the engine's ack.
func (e *serverEvents) Checkpoint(data []byte) error { return e.checkpoint(data, false) }

// CheckpointSensitive is Checkpoint for data that holds a secret.
func (e *serverEvents) CheckpointSensitive(data []byte) error { return e.checkpoint(data, true) }

func (e *serverEvents) checkpoint(data []byte, sensitive bool) error {
	ch := make(chan string, 1)
	e.mu.Lock()
	e.seq++
	seq := e.seq
	e.waiters[seq] = ch
	err := e.stream.Send(&pb.Event{Event: &pb.Event_Checkpoint{Checkpoint: &pb.Checkpoint{Seq: seq, Data: data, Sensitive: sensitive}}})
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("send checkpoint: %w", err)
	}
	select {
	case msg := <-ch:
		if msg != "" {
			return fmt.Errorf("engine could not record checkpoint: %s", msg)
		}
		return nil
	case <-e.stream.Context().Done():
		return fmt.Errorf("checkpoint not acknowledged: %w", e.stream.Context().Err())
	}
}

// ack delivers an ack to its waiter.
func (e *serverEvents) ack(a *pb.CheckpointAck) {
	e.mu.Lock()
	ch, ok := e.waiters[a.Seq]
	delete(e.waiters, a.Seq)
	e.mu.Unlock()
	if ok {
		ch <- a.Error
	}
}

// clientMessage is an ApplyMessage or UndoMessage, reduced.
type clientMessage struct {
	ack    *pb.CheckpointAck
	cancel bool
}

// pump reads acks and cancel requests until the stream ends, cancelling
// the action's context on Cancel or when the stream breaks.
func (e *serverEvents) pump(recv func() (clientMessage, error), cancel context.CancelFunc) {
	for {
		m, err := recv()
		if err != nil {
			cancel()
			return
		}
		if m.cancel {
			cancel()
		}
		if m.ack != nil {
			e.ack(m.ack)
		}
	}
}

func (s *grpcServer) Apply(stream pb.Plugin_ApplyServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return errors.New("apply: first message must be start")
	}
	return s.serveStream(stream, func() (clientMessage, error) {
		m, err := stream.Recv()
		return clientMessage{ack: m.GetAck(), cancel: m.GetCancel() != nil}, err
	}, func(ctx context.Context, ev Events) *pb.Event { return s.apply(ctx, start, ev) })
}

func (s *grpcServer) Undo(stream pb.Plugin_UndoServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return errors.New("undo: first message must be start")
	}
	return s.serveStream(stream, func() (clientMessage, error) {
		m, err := stream.Recv()
		return clientMessage{ack: m.GetAck(), cancel: m.GetCancel() != nil}, err
	}, func(ctx context.Context, ev Events) *pb.Event { return s.undo(ctx, start, ev) })
}

// serveStream runs one call on a stream of its own: acks and cancel come
// from recv, events and the final Result go to the stream.
func (s *grpcServer) serveStream(stream eventStream, recv func() (clientMessage, error), run func(context.Context, Events) *pb.Event) error {
	ev := newServerEvents(stream)
	ctx, done := s.life.call(stream.Context())
	defer done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ev.pump(recv, cancel)
	return ev.send(run(ctx, ev))
}

// apply runs one Apply and returns its Result event.
func (s *grpcServer) apply(ctx context.Context, start *pb.ApplyStart, ev Events) *pb.Event {
	in, paths, err := pluginwire.DecodeValue(start.Inputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	res, err := s.local.Apply(ctx, start.Action, &ApplyRequest{
		Inputs:         in,
		IdempotencyKey: start.IdempotencyKey,
		Checkpoint:     start.Checkpoint,
		Sensitive:      paths,
	}, ev)
	return resultEvent(res, err)
}

// undo runs one Undo and returns its Result event.
func (s *grpcServer) undo(ctx context.Context, start *pb.UndoStart, ev Events) *pb.Event {
	in, _, err := pluginwire.DecodeValue(start.Inputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	out, _, err := pluginwire.DecodeValue(start.Outputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	err = s.local.Undo(ctx, start.Action, &UndoRequest{
		Inputs:         in,
		Outputs:        out,
		UndoState:      start.UndoState,
		IdempotencyKey: start.IdempotencyKey,
		Checkpoint:     start.Checkpoint,
		Force:          start.Force,
	}, ev)
	return resultEvent(nil, err)
}

// resultEvent builds the final event of Apply or Undo.
func resultEvent(res *Result, err error) *pb.Event {
	r := &pb.Result{Error: encodeError(err)}
	if res != nil {
		r.HasResult = true
		r.UndoState = res.UndoState
		r.SensitiveUndoState = res.SensitiveUndoState
		out, eerr := pluginwire.EncodeValue(res.Outputs)
		if eerr != nil {
			if err == nil {
				r.Error = encodeError(&Error{Kind: KindInternal, Err: fmt.Errorf("outputs: %w", eerr)})
			}
		} else {
			r.Outputs = out
		}
	}
	return &pb.Event{Event: &pb.Event_Result{Result: r}}
}

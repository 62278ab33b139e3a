package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"google.golang.org/grpc"
)

// SDKVersion is the version of this SDK, reported in GetSchema.
const SDKVersion = "0.1.0"

// ProtocolVersion is the plugin protocol version this SDK speaks.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the engine and plugins. The
// cookie only tells a user who runs a plugin by hand that it is not a
// program to run directly; never change it.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "RUNBOOK_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "7d1c9c8e4a2b4f0e9a35b1f3d0c6e2a8",
}

// pluginKey is the name of the one service in every plugin set.
const pluginKey = "plugin"

// Serve serves p over gRPC to the runbook engine and returns when the engine
// is done with it. Call it from the plugin's main:
//
//	func main() { sdk.Serve(hello.New()) }
func Serve(p *Plugin) {
	cfg := ServeConfig(p)
	if g, ok := cfg.VersionedPlugins[ProtocolVersion][pluginKey].(*GRPCPlugin); ok {
		go g.life.watchEngine()
	}
	plugin.Serve(cfg)
}

// ServeConfig is the go-plugin configuration Serve uses; tests can adjust
// it (e.g. ServeConfig.Test for reattaching).
func ServeConfig(p *Plugin) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			ProtocolVersion: {pluginKey: &GRPCPlugin{Plugin: p, life: newLifetime()}},
		},
		GRPCServer: newGRPCServer,
		// Mutual TLS with the keys the engine made for this launch; see
		// transport.go.
		TLSProvider: inheritedTLS,
		// go-plugin's own debug chatter would end up in every run log.
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	}
}

// Flow-control windows of the engine ↔ plugin connection. Fixed windows
// turn off gRPC's bandwidth estimator, whose PING round trips otherwise
// ride along with every small Apply; 4 MiB is well above what one loopback
// connection needs in flight.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

// newGRPCServer is the plugin's gRPC server.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts,
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	)...)
}

// GRPCDialOptions are the engine side's counterpart of newGRPCServer.
func GRPCDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	}
}

// ClientPluginSets is what the engine passes to go-plugin's ClientConfig
// VersionedPlugins; dispensing "plugin" gives a Provider.
func ClientPluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {pluginKey: &GRPCPlugin{}}}
}

// DispenseName is the name to Dispense from a go-plugin ClientProtocol.
const DispenseName = pluginKey

// GRPCPlugin adapts a Plugin to go-plugin. On the plugin side Plugin is
// set; on the engine side GRPCClient returns a Provider.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Plugin *Plugin
	// life, when set, cancels every call once the engine is gone.
	life *lifetime
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the plugin's gRPC service.
func (g *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if g.Plugin == nil {
		return errors.New("sdk: GRPCPlugin has no Plugin to serve")
	}
	srv := &grpcServer{name: g.Plugin.Name, prov: Local(g.Plugin), life: g.life}
	if srv.life == nil {
		srv.life = newLifetime()
	}
	pb.RegisterPluginServer(s, srv)
	return nil
}

// GRPCClient returns a Provider speaking to the plugin over conn.
func (g *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewGRPCProvider(pb.NewPluginClient(conn)), nil
}

// NewGRPCServer returns the gRPC service of p. It drives p through Local,
// so input conversion, output checks and panic recovery are the same
// in-process and over the wire.
func NewGRPCServer(p *Plugin) pb.PluginServer {
	return &grpcServer{name: p.Name, prov: Local(p), life: newLifetime()}
}

type grpcServer struct {
	pb.UnimplementedPluginServer
	name string
	prov Provider
	// life gives every Apply and Undo its context and counts them.
	life *lifetime
}

func (s *grpcServer) GetSchema(ctx context.Context, _ *pb.GetSchemaRequest) (*pb.GetSchemaResponse, error) {
	sch, err := s.prov.Schema(ctx)
	if err != nil {
		return nil, err
	}
	return EncodeSchema(sch)
}

func (s *grpcServer) Validate(ctx context.Context, req *pb.ValidateRequest) (*pb.ValidateResponse, error) {
	in, err := DecodeMarkedValue(req.Inputs)
	if err != nil {
		return &pb.ValidateResponse{Error: EncodeError(&Error{Kind: KindInternal, Err: err})}, nil
	}
	d, err := s.prov.Validate(ctx, req.Action, in)
	return &pb.ValidateResponse{Diagnostics: EncodeDiagnostics(d), Error: EncodeError(err)}, nil
}

func (s *grpcServer) Plan(ctx context.Context, req *pb.PlanRequest) (*pb.PlanResponse, error) {
	in, err := DecodeMarkedValue(req.Inputs)
	if err != nil {
		return &pb.PlanResponse{Error: EncodeError(&Error{Kind: KindInternal, Err: err})}, nil
	}
	r, err := s.prov.Plan(ctx, req.Action, &PlanRequest{Inputs: in})
	resp := &pb.PlanResponse{Error: EncodeError(err)}
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
func (e *serverEvents) Checkpoint(data []byte) error {
	ch := make(chan string, 1)
	e.mu.Lock()
	e.seq++
	seq := e.seq
	e.waiters[seq] = ch
	err := e.stream.Send(&pb.Event{Event: &pb.Event_Checkpoint{Checkpoint: &pb.Checkpoint{Seq: seq, Data: data}}})
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
	in, paths, err := DecodeValue(start.Inputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	res, err := s.prov.Apply(ctx, start.Action, &ApplyRequest{
		Inputs:         in,
		IdempotencyKey: start.IdempotencyKey,
		Checkpoint:     start.Checkpoint,
		Sensitive:      paths,
	}, ev)
	return resultEvent(res, err)
}

// undo runs one Undo and returns its Result event.
func (s *grpcServer) undo(ctx context.Context, start *pb.UndoStart, ev Events) *pb.Event {
	in, _, err := DecodeValue(start.Inputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	out, _, err := DecodeValue(start.Outputs)
	if err != nil {
		return resultEvent(nil, &Error{Kind: KindInternal, Err: err})
	}
	err = s.prov.Undo(ctx, start.Action, &UndoRequest{
		Inputs:         in,
		Outputs:        out,
		UndoState:      start.UndoState,
		IdempotencyKey: start.IdempotencyKey,
		Checkpoint:     start.Checkpoint,
	}, ev)
	return resultEvent(nil, err)
}

// resultEvent builds the final event of Apply or Undo.
func resultEvent(res *Result, err error) *pb.Event {
	r := &pb.Result{Error: EncodeError(err)}
	if res != nil {
		r.HasResult = true
		r.UndoState = res.UndoState
		out, eerr := EncodeValue(res.Outputs)
		if eerr != nil {
			if err == nil {
				r.Error = EncodeError(&Error{Kind: KindInternal, Err: fmt.Errorf("outputs: %w", eerr)})
			}
		} else {
			r.Outputs = out
		}
	}
	return &pb.Event{Event: &pb.Event_Result{Result: r}}
}

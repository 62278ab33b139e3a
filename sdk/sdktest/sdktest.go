// Package sdktest runs plugin actions in tests: in-process (Local), over a
// real gRPC connection in the same process (GRPC), or in a real plugin
// process (Process, Self), with helpers to assert events, outputs, undo and
// cancellation. The same checks can run on every transport:
//
//	for name, prov := range sdktest.Providers(t, hello.New()) {
//		t.Run(name, func(t *testing.T) {
//			res, rec := sdktest.MustApply(t, prov, "greet", sdktest.Object(map[string]any{"name": "Ada"}))
//			sdktest.AssertOutput(t, res, "message", cty.StringVal("Hello, Ada!"))
//			...
//		})
//	}
package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginclient"
	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/sdk"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/gocty"
	"google.golang.org/grpc"
)

// Local returns p as an in-process Provider, closed (p's Close hook) at the
// end of the test.
func Local(t testing.TB, p *sdk.Plugin) sdk.Provider {
	prov := sdk.Local(p)
	t.Cleanup(func() {
		if c, ok := prov.(io.Closer); ok {
			if err := c.Close(); err != nil {
				t.Errorf("sdktest: close %s: %v", p.Name, err)
			}
		}
	})
	return prov
}

// GRPC serves p on a loopback gRPC server in this process and returns a
// Provider speaking to it through the real protocol (encoding, checkpoint
// acks, cancellation), as the engine does. Stopped at the end of the test.
func GRPC(t testing.TB, p *sdk.Plugin) sdk.Provider {
	t.Helper()
	gp, ok := sdk.ServeConfig(p).VersionedPlugins[pluginwire.ProtocolVersion][pluginwire.PluginKey].(plugin.GRPCPlugin)
	if !ok {
		t.Fatalf("sdktest: the SDK serves no gRPC plugin")
	}
	var serr error
	conn, srv := plugin.TestGRPCConn(t, func(s *grpc.Server) { serr = gp.GRPCServer(nil, s) })
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	if serr != nil {
		t.Fatalf("sdktest: serve %s: %v", p.Name, serr)
	}
	return pluginclient.New(pb.NewPluginClient(conn))
}

// Providers returns p in-process ("local") and over gRPC ("grpc"), for
// running the same assertions on both.
func Providers(t testing.TB, p *sdk.Plugin) map[string]sdk.Provider {
	return map[string]sdk.Provider{"local": Local(t, p), "grpc": GRPC(t, p)}
}

// serveEnv is set when a test binary is re-executed to serve its plugin.
const serveEnv = "RUNBOOK_SDKTEST_SERVE"

// Main is for TestMain: when the test binary is started by Self it serves
// p as a plugin; otherwise it runs the tests.
//
//	func TestMain(m *testing.M) { sdktest.Main(m, New()) }
func Main(m *testing.M, p *sdk.Plugin) {
	ServeIfChild(p)
	os.Exit(m.Run())
}

// ServeIfChild serves p and exits when this test binary was started by
// Self or StartSelf; otherwise it returns at once. Use it in a TestMain
// that needs to do more than Main.
func ServeIfChild(p *sdk.Plugin) {
	if os.Getenv(serveEnv) == "1" {
		sdk.Serve(p)
		os.Exit(0)
	}
}

// StartSelf is Self without a test: it returns the provider and a function
// that kills the process (for sharing one process across a package's tests).
func StartSelf() (sdk.Provider, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	return StartProcess(exe, []string{serveEnv + "=1"}, io.Discard)
}

// StartProcess is Process without a test: it returns the provider and a
// function that kills the process. The plugin's stderr goes to stderr.
func StartProcess(exe string, env []string, stderr io.Writer, args ...string) (sdk.Provider, func(), error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pluginwire.Handshake,
		VersionedPlugins: pluginclient.PluginSets(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Stderr:           stderr,
		Logger:           hclog.NewNullLogger(),
	})
	rpc, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, nil, fmt.Errorf("start plugin %s: %w", exe, err)
	}
	raw, err := rpc.Dispense(pluginwire.PluginKey)
	if err != nil {
		c.Kill()
		return nil, nil, fmt.Errorf("dispense: %w", err)
	}
	prov, ok := raw.(sdk.Provider)
	if !ok {
		c.Kill()
		return nil, nil, fmt.Errorf("dispense: unexpected %T", raw)
	}
	return prov, c.Kill, nil
}

// Self starts the test binary itself as a plugin process (see Main) and
// returns a Provider speaking to it; killed at the end of the test.
func Self(t testing.TB) sdk.Provider {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	return Process(t, exe, []string{serveEnv + "=1"})
}

// Process starts the plugin executable exe (with extra environment env)
// through go-plugin, as the engine does, and returns a Provider speaking to
// it; the process is killed at the end of the test. Its stderr goes to the
// test log.
func Process(t testing.TB, exe string, env []string, args ...string) sdk.Provider {
	t.Helper()
	prov, kill, err := StartProcess(exe, env, testWriter{t}, args...)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	t.Cleanup(kill)
	return prov
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	if len(b) > 0 && string(b) != "\n" {
		w.t.Logf("plugin stderr: %s", b)
	}
	return len(b), nil
}

// Object builds a cty object from Go values (strings, numbers, bools,
// slices, maps, cty.Values) with their implied types.
func Object(m map[string]any) cty.Value {
	vals := make(map[string]cty.Value, len(m))
	for k, v := range m {
		vals[k] = Value(v)
	}
	return cty.ObjectVal(vals)
}

// Value converts a Go value to cty with its implied type; it panics on
// values gocty cannot represent (test inputs are literals).
func Value(v any) cty.Value {
	switch v := v.(type) {
	case cty.Value:
		return v
	case nil:
		return cty.NullVal(cty.DynamicPseudoType)
	case map[string]any:
		return Object(v)
	case []any:
		vals := make([]cty.Value, len(v))
		for i, x := range v {
			vals[i] = Value(x)
		}
		return cty.TupleVal(vals)
	}
	ty, err := gocty.ImpliedType(v)
	if err != nil {
		panic(fmt.Sprintf("sdktest.Value: %v", err))
	}
	out, err := gocty.ToCtyValue(v, ty)
	if err != nil {
		panic(fmt.Sprintf("sdktest.Value: %v", err))
	}
	return out
}

// Timeout bounds every call made by the helpers below.
var Timeout = 30 * time.Second

// Apply runs action with inputs and records its events.
func Apply(t testing.TB, prov sdk.Provider, action string, inputs cty.Value) (*sdk.Result, *Recorder, error) {
	t.Helper()
	return ApplyRequest(t, prov, action, &sdk.ApplyRequest{Inputs: inputs, IdempotencyKey: "test-run/" + action + "/1"})
}

// ApplyRequest runs action with a full request and records its events.
func ApplyRequest(t testing.TB, prov sdk.Provider, action string, req *sdk.ApplyRequest) (*sdk.Result, *Recorder, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	rec := &Recorder{}
	res, err := prov.Apply(ctx, action, req, rec)
	return res, rec, err
}

// MustApply is Apply failing the test on error.
func MustApply(t testing.TB, prov sdk.Provider, action string, inputs cty.Value) (*sdk.Result, *Recorder) {
	t.Helper()
	res, rec, err := Apply(t, prov, action, inputs)
	if err != nil {
		t.Fatalf("apply %s: %v", action, err)
	}
	return res, rec
}

// Undo runs the native undo of action and records its events.
func Undo(t testing.TB, prov sdk.Provider, action string, req *sdk.UndoRequest) (*Recorder, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	rec := &Recorder{}
	err := prov.Undo(ctx, action, req, rec)
	return rec, err
}

// ApplyAndUndo applies action, then undoes it with the applied inputs,
// outputs and undo state; it fails the test if either fails.
func ApplyAndUndo(t testing.TB, prov sdk.Provider, action string, inputs cty.Value) (*sdk.Result, *Recorder) {
	t.Helper()
	res, _ := MustApply(t, prov, action, inputs)
	rec, err := Undo(t, prov, action, &sdk.UndoRequest{Inputs: inputs, Outputs: res.Outputs, UndoState: res.UndoState, IdempotencyKey: "test-run/" + action + "/undo"})
	if err != nil {
		t.Fatalf("undo %s: %v", action, err)
	}
	return res, rec
}

// ApplyCancelled starts action, cancels it once it emitted its first event
// (or after wait, whichever comes first) and checks that Apply returns
// within 10 s with a cancelled error. It returns what Apply returned.
func ApplyCancelled(t testing.TB, prov sdk.Provider, action string, inputs cty.Value, wait time.Duration) (*sdk.Result, *Recorder, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &Recorder{first: make(chan struct{})}
	type out struct {
		res *sdk.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := prov.Apply(ctx, action, &sdk.ApplyRequest{Inputs: inputs, IdempotencyKey: "test-run/" + action + "/1"}, rec)
		done <- out{res, err}
	}()
	select {
	case <-rec.first:
	case <-time.After(wait):
	case o := <-done:
		t.Fatalf("apply %s finished before it was cancelled: %v", action, o.err)
	}
	cancel()
	select {
	case o := <-done:
		AssertKind(t, o.err, sdk.KindCancelled)
		return o.res, rec, o.err
	case <-time.After(10 * time.Second):
		t.Fatalf("apply %s did not return within 10s of being cancelled", action)
		return nil, rec, nil
	}
}

// AssertKind fails the test unless err is an *sdk.Error of kind k.
func AssertKind(t testing.TB, err error, k sdk.Kind) {
	t.Helper()
	var e *sdk.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *sdk.Error of kind %q", err, err, k)
	}
	if e.Kind != k {
		t.Fatalf("error kind = %q, want %q (error: %v)", e.Kind, k, err)
	}
}

// AssertOutput fails the test unless the named output equals want
// (marks ignored).
func AssertOutput(t testing.TB, res *sdk.Result, name string, want cty.Value) {
	t.Helper()
	if res == nil || res.Outputs == cty.NilVal || res.Outputs.IsNull() {
		t.Fatalf("no outputs, want %s = %#v", name, want)
	}
	if !res.Outputs.Type().IsObjectType() || !res.Outputs.Type().HasAttribute(name) {
		t.Fatalf("outputs %#v have no attribute %q", res.Outputs, name)
	}
	got, _ := res.Outputs.GetAttr(name).UnmarkDeep()
	if !got.RawEquals(want) {
		t.Fatalf("output %s = %#v, want %#v", name, got, want)
	}
}

// Recorder is an sdk.Events that records everything. Set CheckpointErr to
// make Checkpoint fail.
type Recorder struct {
	mu sync.Mutex // guards everything below
	// Events in the order they arrived.
	events []Event
	// CheckpointErr is returned by Checkpoint when set.
	CheckpointErr error
	// first is closed on the first event (ApplyCancelled).
	first     chan struct{}
	firstOnce sync.Once
}

var _ sdk.Events = (*Recorder)(nil)

// Event is one recorded event; Kind is "log", "progress" or "checkpoint".
type Event struct {
	Kind    string
	Level   sdk.Level
	Message string
	Current int64
	Total   int64
	Unit    string
	Data    []byte
}

func (r *Recorder) add(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	if r.first != nil {
		r.firstOnce.Do(func() { close(r.first) })
	}
}

func (r *Recorder) Log(level sdk.Level, msg string) {
	r.add(Event{Kind: "log", Level: level, Message: msg})
}

func (r *Recorder) Progress(current, total int64, unit string) {
	r.add(Event{Kind: "progress", Current: current, Total: total, Unit: unit})
}

func (r *Recorder) Checkpoint(data []byte) error {
	r.add(Event{Kind: "checkpoint", Data: append([]byte(nil), data...)})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.CheckpointErr
}

// Events returns a copy of everything recorded.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Logs returns the log messages.
func (r *Recorder) Logs() []string {
	var out []string
	for _, e := range r.Events() {
		if e.Kind == "log" {
			out = append(out, e.Message)
		}
	}
	return out
}

// Checkpoints returns the checkpoint data, in order.
func (r *Recorder) Checkpoints() [][]byte {
	var out [][]byte
	for _, e := range r.Events() {
		if e.Kind == "checkpoint" {
			out = append(out, e.Data)
		}
	}
	return out
}

// ProgressEvents returns the progress events.
func (r *Recorder) ProgressEvents() []Event {
	var out []Event
	for _, e := range r.Events() {
		if e.Kind == "progress" {
			out = append(out, e)
		}
	}
	return out
}

// Context returns a context bounded by Timeout.
func Context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), Timeout)
}

// Schema fetches the plugin schema.
func Schema(t testing.TB, prov sdk.Provider) (*sdk.PluginSchema, error) {
	t.Helper()
	ctx, cancel := Context()
	defer cancel()
	return prov.Schema(ctx)
}

// Plan runs the action's Plan.
func Plan(t testing.TB, prov sdk.Provider, action string, inputs cty.Value) (*sdk.PlanResult, error) {
	t.Helper()
	ctx, cancel := Context()
	defer cancel()
	return prov.Plan(ctx, action, &sdk.PlanRequest{Inputs: inputs})
}

// Validate runs the action's Validate.
func Validate(t testing.TB, prov sdk.Provider, action string, inputs cty.Value) (sdk.Diagnostics, error) {
	t.Helper()
	ctx, cancel := Context()
	defer cancel()
	return prov.Validate(ctx, action, inputs)
}

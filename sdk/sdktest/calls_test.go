package sdktest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/plugintest"
	"github.com/runbookdev/runbook/sdk"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// withoutCalls is a plugin server from before the Calls stream.
type withoutCalls struct{ pb.PluginServer }

func (withoutCalls) Calls(pb.Plugin_CallsServer) error {
	return status.Error(codes.Unimplemented, "method Calls not implemented")
}

// A plugin without Calls is still driven, one stream per call.
func TestCallsFallBack(t *testing.T) {
	conn, srv := plugin.TestGRPCConn(t, func(s *grpc.Server) {
		pb.RegisterPluginServer(s, withoutCalls{sdk.NewGRPCServer(plugintest.New())})
	})
	defer srv.Stop()
	defer conn.Close()
	prov := sdk.NewGRPCProvider(pb.NewPluginClient(conn))
	for i := range 2 { // the second call goes straight to the old way
		res, rec, err := sdktest.ApplyRequest(t, prov, "events", &sdk.ApplyRequest{
			Inputs:         cty.ObjectVal(map[string]cty.Value{"count": cty.NumberIntVal(2)}),
			IdempotencyKey: fmt.Sprintf("run/step/%d", i),
		})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := len(rec.Checkpoints()); got != 2 {
			t.Fatalf("call %d: %d checkpoints, want 2", i, got)
		}
		sdktest.AssertOutput(t, res, "resumed_from", cty.StringVal(fmt.Sprintf("|run/step/%d", i)))
	}
	rec, err := sdktest.Undo(t, prov, "undoer", &sdk.UndoRequest{
		Inputs:    cty.ObjectVal(map[string]cty.Value{"x": cty.StringVal("a")}),
		UndoState: []byte("state"),
	})
	if err != nil {
		t.Fatalf("undo: %v", err)
	}
	if logs := rec.Logs(); len(logs) != 1 || logs[0] != "undo x=a y=<null> state=state key=" {
		t.Fatalf("undo logs = %q", logs)
	}
}

// Many calls share the Calls stream: each gets its own events, checkpoints
// and result, and cancelling one leaves the others alone.
func TestCallsConcurrent(t *testing.T) {
	provs := map[string]sdk.Provider{"grpc": sdktest.GRPC(t, plugintest.New()), "process": process}
	for name, prov := range provs {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := sdktest.Context()
			defer cancel()
			// A slow call, cancelled while the others run.
			slowCtx, cancelSlow := context.WithCancel(ctx)
			defer cancelSlow()
			slowDone := make(chan error, 1)
			var slowRes *sdk.Result
			go func() {
				var err error
				slowRes, err = prov.Apply(slowCtx, "slow", &sdk.ApplyRequest{
					Inputs: cty.ObjectVal(map[string]cty.Value{"duration": cty.StringVal("1m"), "ignore_cancel": cty.NullVal(cty.Bool)}),
				}, sdk.NopEvents{})
				slowDone <- err
			}()

			const n = 40
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("run/s%d/1", i)
					rec := &sdktest.Recorder{}
					res, err := prov.Apply(ctx, "events", &sdk.ApplyRequest{
						Inputs:         cty.ObjectVal(map[string]cty.Value{"count": cty.NumberIntVal(int64(1 + i%4))}),
						IdempotencyKey: key,
						Checkpoint:     []byte(fmt.Sprintf("c%d", i)),
					}, rec)
					switch {
					case err != nil:
						errs[i] = err
					case len(rec.Checkpoints()) != 1+i%4:
						errs[i] = fmt.Errorf("%d checkpoints, want %d", len(rec.Checkpoints()), 1+i%4)
					case !res.Outputs.GetAttr("resumed_from").RawEquals(cty.StringVal(fmt.Sprintf("c%d|%s", i, key))):
						errs[i] = fmt.Errorf("resumed_from = %#v: another call's result", res.Outputs.GetAttr("resumed_from"))
					case string(res.UndoState) != fmt.Sprintf("undo:%d", 1+i%4):
						errs[i] = fmt.Errorf("undo state %q", res.UndoState)
					}
				}()
				if i == n/2 {
					cancelSlow()
				}
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			}
			select {
			case err := <-slowDone:
				if err == nil {
					t.Fatal("cancelled call succeeded")
				}
				if slowRes == nil || string(slowRes.UndoState) != "partial" {
					t.Fatalf("cancelled call lost its partial undo state: %+v", slowRes)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("cancelled call did not return")
			}
		})
	}
}

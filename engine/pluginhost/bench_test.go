package pluginhost

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// BenchmarkColdStart measures launch + handshake (AutoMTLS) + GetSchema of
// the builtin core plugin. Target: ≤ 30 ms.
func BenchmarkColdStart(b *testing.B) {
	ctx := context.Background()
	defer reportCPU(b)()
	for b.Loop() {
		h := New(Options{Builtins: builtin.All(), SelfExe: testPlugin})
		if _, err := h.Schema(ctx, "core"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h.Close()
		b.StartTimer()
	}
}

// BenchmarkNoopApply measures one core.noop Apply round trip to a running
// plugin process. Target: ≤ 200 µs.
func BenchmarkNoopApply(b *testing.B) {
	ctx := context.Background()
	p, req := runningCore(b)
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := p.Apply(ctx, "noop", req, sdk.NopEvents{}); err != nil {
			b.Fatal(err)
		}
	}
}

// runningCore starts the core plugin's process (stopped when b ends) and
// returns it with a no-op request.
func runningCore(b *testing.B) (sdk.Provider, *sdk.ApplyRequest) {
	h := New(Options{Builtins: builtin.All(), SelfExe: testPlugin})
	b.Cleanup(func() { h.Close() })
	p, err := h.Provider(context.Background(), "core")
	if err != nil {
		b.Fatal(err)
	}
	return p, &sdk.ApplyRequest{
		Inputs:         cty.ObjectVal(map[string]cty.Value{"values": cty.StringVal("x")}),
		IdempotencyKey: "run/step/1",
	}
}

// reportCPU reports the CPU time (user+sys, this process and its reaped
// children) per op: on a loaded machine wall time mostly measures the
// scheduler. Call as `defer reportCPU(b)()`.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// BenchmarkNoopApplyParallel measures core.noop Apply calls to one running
// plugin process from 10 goroutines at once, as a run with the default
// -parallelism does. cpu-ns/op counts the engine side only (the plugin
// process is reaped after the measurement).
func BenchmarkNoopApplyParallel(b *testing.B) {
	ctx := context.Background()
	p, req := runningCore(b)
	defer reportCPU(b)()
	b.SetParallelism(5) // x GOMAXPROCS (2 here) = 10 callers
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Apply(ctx, "noop", req, sdk.NopEvents{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

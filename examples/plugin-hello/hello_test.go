package main

import (
	"strings"
	"testing"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// TestMain lets sdktest.Self re-execute this test binary as the plugin.
func TestMain(m *testing.M) { sdktest.Main(m, New()) }

func TestGreet(t *testing.T) {
	provs := sdktest.Providers(t, New()) // in-process and over gRPC
	provs["process"] = sdktest.Self(t)   // a real plugin process
	for name, p := range provs {
		t.Run(name, func(t *testing.T) {
			res, rec := sdktest.MustApply(t, p, "greet", sdktest.Object(map[string]any{"name": "Ada"}))
			sdktest.AssertOutput(t, res, "message", cty.StringVal("Hello, Ada!"))
			if logs := rec.Logs(); len(logs) != 1 || logs[0] != "greeting Ada" {
				t.Fatalf("logs = %v", logs)
			}
			_, _, err := sdktest.Apply(t, p, "greet", sdktest.Object(map[string]any{"name": ""}))
			sdktest.AssertKind(t, err, sdk.KindInvalid)
		})
	}
}

func TestCrashIsRecoveredInApply(t *testing.T) {
	_, _, err := sdktest.Apply(t, sdktest.GRPC(t, New()), "crash", sdktest.Object(map[string]any{"how": "panic", "message": "boom"}))
	sdktest.AssertKind(t, err, sdk.KindInternal)
	if !strings.Contains(err.Error(), "plugin hello crashed in crash: panic: boom") {
		t.Fatalf("err = %v", err)
	}
}

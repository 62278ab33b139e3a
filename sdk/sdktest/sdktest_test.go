package sdktest_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runbookdev/runbook/internal/pluginclient"
	"github.com/runbookdev/runbook/internal/plugintest"
	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// process is this test binary serving plugintest, shared by all tests.
var process sdk.Provider

func TestMain(m *testing.M) {
	sdktest.ServeIfChild(plugintest.New())
	prov, kill, err := sdktest.StartSelf()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	process = prov
	code := m.Run()
	kill()
	os.Exit(code)
}

// transports runs f on every transport: in-process, gRPC in-process and a
// real plugin process (this test binary re-executed).
func transports(t *testing.T, f func(t *testing.T, prov sdk.Provider)) {
	provs := sdktest.Providers(t, plugintest.New())
	provs["process"] = process
	for _, name := range []string{"local", "grpc", "process"} {
		t.Run(name, func(t *testing.T) { f(t, provs[name]) })
	}
}

var ctyCmp = cmp.Options{
	cmp.Comparer(cty.Type.Equals),
	cmp.Comparer(func(a, b cty.Value) bool { return a.RawEquals(b) }),
}

func TestSchemaRoundTrip(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		s, err := sdktest.Schema(t, prov)
		if err != nil {
			t.Fatal(err)
		}
		want := sdk.SchemaOf(plugintest.New())
		if diff := cmp.Diff(want, s, ctyCmp); diff != "" {
			t.Fatalf("schema (-want +got):\n%s", diff)
		}
		if s.Actions["echo"].MaxConcurrency != 3 || !s.Actions["echo"].Capabilities.SupportsPlan {
			t.Fatalf("echo schema lost fields: %+v", s.Actions["echo"])
		}
	})
}

func allTypes() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"s":   cty.StringVal("héllo"),
		"n":   cty.MustParseNumberVal("3.14159265358979323846264338327950288"),
		"b":   cty.True,
		"l":   cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
		"set": cty.SetVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}),
		"m":   cty.MapVal(map[string]cty.Value{"x": cty.NumberIntVal(1)}),
		"o": cty.ObjectVal(map[string]cty.Value{
			"a": cty.StringVal("z"),
			"b": cty.ListVal([]cty.Value{cty.False}),
		}),
		"t":      cty.TupleVal([]cty.Value{cty.StringVal("x"), cty.NumberIntVal(-7)}),
		"any":    cty.ObjectVal(map[string]cty.Value{"deep": cty.ListVal([]cty.Value{cty.NumberIntVal(1)})}),
		"secret": cty.StringVal("hunter2"),
	})
}

func TestEveryValueType(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		in := allTypes()
		res, _ := sdktest.MustApply(t, prov, "echo", in)
		for name, want := range in.AsValueMap() {
			sdktest.AssertOutput(t, res, name, want)
		}
		// Nulls of every type survive too.
		nulls := cty.ObjectVal(map[string]cty.Value{"s": cty.StringVal("x"), "o": cty.NullVal(cty.DynamicPseudoType)})
		res, _ = sdktest.MustApply(t, prov, "echo", nulls)
		if got := res.Outputs.GetAttr("o"); !got.IsNull() {
			t.Fatalf("o = %#v, want null", got)
		}
	})
}

func TestSensitiveMarks(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		in := pluginwire.MarkPaths(allTypes(), []cty.Path{
			cty.GetAttrPath("secret"),
			cty.GetAttrPath("m").Index(cty.StringVal("x")),
			cty.GetAttrPath("l").Index(cty.NumberIntVal(1)),
		})
		res, _ := sdktest.MustApply(t, prov, "echo", in)
		// The plugin saw the paths, not the marks.
		got := res.Outputs.GetAttr("sensitive_paths")
		if got.IsNull() || got.LengthInt() != 3 {
			t.Fatalf("sensitive paths seen by the plugin = %#v, want 3", got)
		}
		// A mark set by the plugin comes back.
		if !res.Outputs.GetAttr("secret").HasMark(pluginwire.MarkSensitive) {
			t.Fatalf("secret output is not marked: %#v", res.Outputs.GetAttr("secret"))
		}
	})
}

func TestUnknownsInPlanAndValidate(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		in := cty.ObjectVal(map[string]cty.Value{
			"s":   cty.StringVal("x"),
			"n":   cty.UnknownVal(cty.Number),
			"l":   cty.ListVal([]cty.Value{cty.UnknownVal(cty.String)}),
			"any": cty.DynamicVal,
		})
		res, err := sdktest.Plan(t, prov, "echo", in)
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts["unknown"] != 3 {
			t.Fatalf("plan saw %d unknown inputs (%v), want 3", res.Counts["unknown"], res.Details)
		}
		d, err := sdktest.Validate(t, prov, "echo", in)
		if err != nil || len(d) != 0 {
			t.Fatalf("validate with unknowns = %v, %v", d, err)
		}
		d, err = sdktest.Validate(t, prov, "echo", cty.ObjectVal(map[string]cty.Value{"s": cty.StringVal("bad"), "n": cty.NumberIntVal(-1)}))
		if err != nil {
			t.Fatal(err)
		}
		want := sdk.Diagnostics{
			{Severity: sdk.SeverityError, Summary: `s must not be "bad"`, Path: []string{"s"}},
			{Severity: sdk.SeverityWarning, Summary: "n is negative", Path: []string{"n"}},
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Fatalf("diagnostics (-want +got):\n%s", diff)
		}
		d, _ = sdktest.Validate(t, prov, "echo", cty.ObjectVal(map[string]cty.Value{"nope": cty.True}))
		if !d.HasErrors() || d[0].Path[0] != "nope" {
			t.Fatalf("unknown argument not reported: %v", d)
		}
	})
}

func TestEventsAndCheckpoints(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		res, rec, err := sdktest.ApplyRequest(t, prov, "events", &sdk.ApplyRequest{
			Inputs:         cty.ObjectVal(map[string]cty.Value{"count": cty.NumberIntVal(3)}),
			IdempotencyKey: "run1/step/2",
			Checkpoint:     []byte("cp7"),
		})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range rec.Events() {
			kinds = append(kinds, e.Kind)
		}
		wantKinds := []string{"log", "progress", "checkpoint", "log", "progress", "checkpoint", "log", "progress", "checkpoint"}
		if diff := cmp.Diff(wantKinds, kinds); diff != "" {
			t.Fatalf("event order (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([][]byte{[]byte("cp1"), []byte("cp2"), []byte("cp3")}, rec.Checkpoints()); diff != "" {
			t.Fatalf("checkpoints (-want +got):\n%s", diff)
		}
		if p := rec.ProgressEvents(); p[2].Current != 3 || p[2].Total != 3 || p[2].Unit != "items" {
			t.Fatalf("progress = %+v", p)
		}
		sdktest.AssertOutput(t, res, "resumed_from", cty.StringVal("cp7|run1/step/2"))
		sdktest.AssertOutput(t, res, "checkpoint_errors", cty.NumberIntVal(0))
		if string(res.UndoState) != "undo:3" {
			t.Fatalf("undo state = %q", res.UndoState)
		}
	})
}

func TestCheckpointErrorReachesPlugin(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		ctx, cancel := sdktest.Context()
		defer cancel()
		rec := &sdktest.Recorder{CheckpointErr: errors.New("journal full")}
		res, err := prov.Apply(ctx, "events", &sdk.ApplyRequest{Inputs: cty.ObjectVal(map[string]cty.Value{"count": cty.NumberIntVal(2)})}, rec)
		if err != nil {
			t.Fatal(err)
		}
		sdktest.AssertOutput(t, res, "checkpoint_errors", cty.NumberIntVal(2))
	})
}

func TestCancellation(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		start := time.Now()
		res, _, err := sdktest.ApplyCancelled(t, prov, "slow", cty.ObjectVal(map[string]cty.Value{"duration": cty.StringVal("1m")}), 5*time.Second)
		if time.Since(start) > 5*time.Second {
			t.Fatalf("cancellation took %s", time.Since(start))
		}
		if res == nil || string(res.UndoState) != "partial" {
			t.Fatalf("partial undo state lost on cancel: res=%+v err=%v", res, err)
		}
	})
}

func TestClassifiedErrors(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		res, _, err := sdktest.Apply(t, prov, "fail", sdktest.Object(map[string]any{
			"kind": "quota", "retryable": true, "hint": "free some space", "message": "disk full",
		}))
		var e *sdk.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %T %v", err, err)
		}
		if e.Kind != sdk.KindQuota || !e.Retryable || e.Hint != "free some space" || e.Error() != "quota: disk full" {
			t.Fatalf("error = %+v (%q)", e, e.Error())
		}
		if res == nil || string(res.UndoState) != "half" {
			t.Fatalf("partial result lost: %+v", res)
		}
		_, _, err = sdktest.Apply(t, prov, "fail", sdktest.Object(map[string]any{"kind": "plain", "message": "oops"}))
		if err == nil || !strings.Contains(err.Error(), "oops") || sdk.Classify(err).Kind != sdk.KindUnknown {
			t.Fatalf("plain error = %v", err)
		}
		_, _, err = sdktest.Apply(t, prov, "nope", cty.EmptyObjectVal)
		sdktest.AssertKind(t, err, sdk.KindInvalid)
		_, _, err = sdktest.Apply(t, prov, "echo", cty.EmptyObjectVal)
		if err == nil || !strings.Contains(err.Error(), `"s"`) || !strings.Contains(err.Error(), "required") {
			t.Fatalf("missing input error = %v", err)
		}
	})
}

func TestUndo(t *testing.T) {
	transports(t, func(t *testing.T, prov sdk.Provider) {
		in := cty.ObjectVal(map[string]cty.Value{"x": cty.StringVal("a")})
		_, rec := sdktest.ApplyAndUndo(t, prov, "undoer", in)
		want := []string{"undo x=a y=a state=state key=test-run/undoer/undo"}
		if diff := cmp.Diff(want, rec.Logs()); diff != "" {
			t.Fatalf("undo logs (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([][]byte{[]byte("undo-cp")}, rec.Checkpoints()); diff != "" {
			t.Fatalf("undo checkpoints (-want +got):\n%s", diff)
		}
		_, err := sdktest.Undo(t, prov, "undoer", &sdk.UndoRequest{Inputs: cty.ObjectVal(map[string]cty.Value{"x": cty.StringVal("fail")})})
		if e := sdk.Classify(err); e.Kind != sdk.KindConflict || !e.Retryable || e.Hint != "try later" {
			t.Fatalf("undo error = %+v", e)
		}
		_, err = sdktest.Undo(t, prov, "echo", &sdk.UndoRequest{Inputs: cty.ObjectVal(map[string]cty.Value{"s": cty.StringVal("x")})})
		sdktest.AssertKind(t, err, sdk.KindInvalid)
	})
}

// TestCancelGrace checks that an action ignoring cancellation does not hold
// the engine longer than pluginclient.CancelGrace.
func TestCancelGrace(t *testing.T) {
	old := pluginclient.CancelGrace
	pluginclient.CancelGrace = 200 * time.Millisecond
	defer func() { pluginclient.CancelGrace = old }()
	prov := sdktest.GRPC(t, plugintest.New())
	start := time.Now()
	_, _, err := sdktest.ApplyCancelled(t, prov, "slow", sdktest.Object(map[string]any{"duration": "5s", "ignore_cancel": true}), 5*time.Second)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("cancel took %s (err %v)", d, err)
	}
}

// A served plugin runs its Configure hook when serving starts, before any
// call, and its Close hook when the engine stops it.
func TestServeRunsHooks(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "hooks")
	read := func() string {
		b, _ := os.ReadFile(file)
		return string(b)
	}
	prov, kill, err := sdktest.StartProcess(exe, []string{"RUNBOOK_SDKTEST_SERVE=1", plugintest.HooksEnv + "=" + file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "configure\n" {
		kill()
		t.Fatalf("after start: hooks %q, want configure", got)
	}
	sdktest.MustApply(t, prov, "echo", sdktest.Object(map[string]any{"s": "x"}))
	kill()
	if got := read(); got != "configure\nclose\n" {
		t.Fatalf("after stop: hooks %q, want configure then close", got)
	}
}

package sdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// testAction applies f; it implements no optional interface.
type testAction struct {
	schema ActionSchema
	f      func() (*Result, error)
}

func (a *testAction) Schema() ActionSchema { return a.schema }
func (a *testAction) Apply(context.Context, *ApplyRequest, Events) (*Result, error) {
	return a.f()
}

// undoAction also implements Undoer and Planner.
type undoAction struct{ testAction }

var (
	_ Undoer  = (*undoAction)(nil)
	_ Planner = (*undoAction)(nil)
)

func (*undoAction) Undo(context.Context, *UndoRequest, Events) error { return nil }
func (*undoAction) Plan(context.Context, *PlanRequest) (*PlanResult, error) {
	return &PlanResult{Summary: "plan"}, nil
}

func okResult() (*Result, error) { return nil, nil }

// Capabilities follow from the interfaces an action implements.
func TestCapabilitiesAreDerived(t *testing.T) {
	p := &Plugin{Name: "p", Actions: []Action{
		&testAction{schema: ActionSchema{Name: "plain", Capabilities: Capabilities{Idempotent: true}}, f: okResult},
		&undoAction{testAction{schema: ActionSchema{Name: "undo"}, f: okResult}},
	}}
	s, err := Local(p).Schema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Actions["plain"].Capabilities; got != (Capabilities{Idempotent: true}) {
		t.Errorf("plain: %+v", got)
	}
	if got := s.Actions["undo"].Capabilities; got != (Capabilities{NativeUndo: true, SupportsPlan: true}) {
		t.Errorf("undo: %+v", got)
	}
	if got := SchemaOf(p).Actions["undo"].Capabilities; !got.NativeUndo || !got.SupportsPlan {
		t.Errorf("SchemaOf: undo: %+v", got)
	}
}

// A capability declared without its interface is refused when the plugin
// serves, and fails every call of a Local plugin.
func TestDeclaredButUnimplementedCapability(t *testing.T) {
	for _, caps := range []Capabilities{{NativeUndo: true}, {SupportsPlan: true}} {
		p := &Plugin{Name: "p", Actions: []Action{&testAction{schema: ActionSchema{Name: "a", Capabilities: caps}, f: okResult}}}
		err := p.Check()
		if err == nil || !strings.Contains(err.Error(), "does not implement") {
			t.Errorf("%+v: Check = %v", caps, err)
		}
		if _, err := Local(p).Apply(context.Background(), "a", &ApplyRequest{}, nil); err == nil {
			t.Errorf("%+v: Local Apply of a bad plugin succeeded", caps)
		}
		_, srv := serveConfig(p)
		if err := (serverPlugin{srv: srv}).GRPCServer(nil, nil); err == nil {
			t.Errorf("%+v: the plugin served", caps)
		}
	}
}

// Configure runs once before the first call and Close once at the end;
// calls share what Configure opened, and fail after Close.
func TestConfigureAndCloseHooks(t *testing.T) {
	var configured, closed atomic.Int32
	var client atomic.Pointer[string] // what Configure opened
	p := &Plugin{Name: "p",
		Configure: func(context.Context) error {
			configured.Add(1)
			c := "client"
			client.Store(&c)
			return nil
		},
		Close: func() error { closed.Add(1); client.Store(nil); return nil },
	}
	p.Actions = []Action{&testAction{schema: ActionSchema{Name: "a", Outputs: []Attribute{{Name: "c", Type: cty.String}}},
		f: func() (*Result, error) {
			c := client.Load()
			if c == nil {
				return nil, errors.New("no client")
			}
			return &Result{Outputs: cty.ObjectVal(map[string]cty.Value{"c": cty.StringVal(*c)})}, nil
		}}}
	prov := Local(p)
	if configured.Load() != 0 {
		t.Fatal("Configure ran before the first call")
	}
	for range 3 {
		if _, err := prov.Apply(context.Background(), "a", &ApplyRequest{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if configured.Load() != 1 {
		t.Fatalf("Configure ran %d times", configured.Load())
	}
	c := prov.(io.Closer)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if closed.Load() != 1 {
		t.Fatalf("Close ran %d times", closed.Load())
	}
	if _, err := prov.Apply(context.Background(), "a", &ApplyRequest{}, nil); err == nil {
		t.Fatal("a call after Close succeeded")
	}

	// A failing Configure fails the calls, classified; Close then does
	// not run, nor does a Close of a plugin never configured.
	closed.Store(0)
	p.Configure = func(context.Context) error { return errors.New("no route to host") }
	prov = Local(p)
	_, err := prov.Apply(context.Background(), "a", &ApplyRequest{}, nil)
	if e := Classify(err); e.Kind != KindInternal || !strings.Contains(err.Error(), "no route to host") {
		t.Fatalf("Apply after a failed Configure = %v", err)
	}
	_ = prov.(io.Closer).Close()
	_ = Local(p).(io.Closer).Close()
	if closed.Load() != 0 {
		t.Fatalf("Close ran %d times without a Configure that succeeded", closed.Load())
	}
}

// A recovered panic is still a classified error, and its stack goes to the
// plugin log.
func TestRecoveredPanicLogsStack(t *testing.T) {
	var log bytes.Buffer
	panicLog = &log
	t.Cleanup(func() { panicLog = nil })
	p := &Plugin{Name: "p", Actions: []Action{&testAction{schema: ActionSchema{Name: "boom"}, f: func() (*Result, error) {
		panic("boom\nsecond line")
	}}}}
	_, err := Local(p).Apply(context.Background(), "boom", &ApplyRequest{}, nil)
	if e := Classify(err); e.Kind != KindInternal || !strings.Contains(err.Error(), "panic: boom") || strings.Contains(err.Error(), "second line") {
		t.Fatalf("Apply = %v", err)
	}
	got := log.String()
	for _, want := range []string{"recovered panic in action boom: boom", "goroutine ", "sdk.TestRecoveredPanicLogsStack"} {
		if !strings.Contains(got, want) {
			t.Errorf("plugin log lacks %q:\n%s", want, got)
		}
	}
	if strings.HasPrefix(got, "panic: ") || strings.Contains(got, "\npanic: ") {
		t.Errorf("the log reads as the process's own death:\n%s", got)
	}
}

package pluginclient_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// wireAction returns the error and diagnostics it is given, to see them
// cross the wire (sdktest.GRPC speaks through this package's client).
type wireAction struct {
	err   error
	diags sdk.Diagnostics
}

func (a *wireAction) Schema() sdk.ActionSchema { return sdk.ActionSchema{Name: "a"} }
func (a *wireAction) Apply(context.Context, *sdk.ApplyRequest, sdk.Events) (*sdk.Result, error) {
	return nil, a.err
}
func (a *wireAction) Validate(context.Context, cty.Value) sdk.Diagnostics { return a.diags }

func TestErrorRoundTrip(t *testing.T) {
	tests := []struct {
		in   error
		want *sdk.Error
		msg  string
	}{
		{sdk.Errorf(sdk.KindAuth, true, "check the password", "login as %s refused", "bob"),
			&sdk.Error{Kind: sdk.KindAuth, Retryable: true, Hint: "check the password"}, "auth: login as bob refused"},
		{fmt.Errorf("replicate: %w", sdk.Errorf(sdk.KindQuota, false, "", "disk full")),
			&sdk.Error{Kind: sdk.KindQuota}, "quota: replicate: disk full"},
		{errors.New("plain"), &sdk.Error{Kind: sdk.KindUnknown}, "plain"},
		{nil, nil, ""},
	}
	for _, tt := range tests {
		prov := sdktest.GRPC(t, &sdk.Plugin{Name: "p", Actions: []sdk.Action{&wireAction{err: tt.in}}})
		_, got := prov.Apply(context.Background(), "a", &sdk.ApplyRequest{Inputs: cty.EmptyObjectVal}, nil)
		if tt.want == nil {
			if got != nil {
				t.Errorf("nil error came back as %v", got)
			}
			continue
		}
		var e *sdk.Error
		if !errors.As(got, &e) {
			t.Fatalf("%v: %T", tt.in, got)
		}
		if e.Kind != tt.want.Kind || e.Retryable != tt.want.Retryable || e.Hint != tt.want.Hint || e.Error() != tt.msg {
			t.Errorf("round trip of %v = %+v (%q)", tt.in, e, e.Error())
		}
	}
}

func TestDiagnosticsRoundTrip(t *testing.T) {
	d := sdk.Diagnostics{}.Errorf([]string{"target", "url"}, "bad %s", "url").Warnf(nil, "careful")
	d[0].Detail = "more"
	prov := sdktest.GRPC(t, &sdk.Plugin{Name: "p", Actions: []sdk.Action{&wireAction{diags: d}}})
	got, err := prov.Validate(context.Background(), "a", cty.EmptyObjectVal)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// secretAction returns an undo state marked sensitive after a sensitive
// and a plain checkpoint.
type secretAction struct{}

func (secretAction) Schema() sdk.ActionSchema { return sdk.ActionSchema{Name: "a"} }
func (secretAction) Apply(_ context.Context, _ *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	if err := sdk.CheckpointSensitive(ev, []byte("secret")); err != nil {
		return nil, err
	}
	if err := ev.Checkpoint([]byte("plain")); err != nil {
		return nil, err
	}
	return &sdk.Result{UndoState: []byte("key"), SensitiveUndoState: true}, nil
}

// markEvents records which checkpoints came marked sensitive.
type markEvents struct {
	sdk.NopEvents
	got []string
}

func (m *markEvents) Checkpoint(b []byte) error {
	m.got = append(m.got, "plain:"+string(b))
	return nil
}
func (m *markEvents) CheckpointSensitive(b []byte) error {
	m.got = append(m.got, "sensitive:"+string(b))
	return nil
}

func TestSensitiveMarksRoundTrip(t *testing.T) {
	prov := sdktest.GRPC(t, &sdk.Plugin{Name: "p", Actions: []sdk.Action{secretAction{}}})
	ev := &markEvents{}
	res, err := prov.Apply(context.Background(), "a", &sdk.ApplyRequest{Inputs: cty.EmptyObjectVal}, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SensitiveUndoState || string(res.UndoState) != "key" {
		t.Errorf("result = %q, sensitive %v; want the mark to cross the wire", res.UndoState, res.SensitiveUndoState)
	}
	if diff := cmp.Diff([]string{"sensitive:secret", "plain:plain"}, ev.got); diff != "" {
		t.Errorf("checkpoints (-want +got):\n%s", diff)
	}
}

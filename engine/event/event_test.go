package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type quiet struct{ Recorder }

func (*quiet) ShowsOutputs() bool { return false }

func TestShowsOutputs(t *testing.T) {
	q := &quiet{}
	for _, tc := range []struct {
		name string
		sink Sink
		want bool
	}{
		{"a sink that does not say", &Recorder{}, true},
		{"a sink that does not show them", q, false},
		{"multi of quiet sinks", Multi(q, &quiet{}), false},
		{"multi with one that shows them", Multi(q, Func(func(Event) {})), true},
		{"nested multi", Multi(Multi(q), Multi(q, &Recorder{})), true},
	} {
		if got := ShowsOutputs(tc.sink); got != tc.want {
			t.Errorf("%s: ShowsOutputs = %v, want %v", tc.name, got, tc.want)
		}
	}
	// Multi still delivers every event to every sink.
	a, b := &Recorder{}, &Recorder{}
	Multi(a, b).Emit(Event{Type: StepStarted})
	if len(a.Events()) != 1 || len(b.Events()) != 1 {
		t.Errorf("Multi delivered %d and %d events, want 1 and 1", len(a.Events()), len(b.Events()))
	}
}

func TestMasked(t *testing.T) {
	mask := func(s string) string { return strings.ReplaceAll(s, "42", "***") }
	at := time.Date(2042, 1, 2, 3, 4, 5, 0, time.UTC)
	in := Event{V: 1, Type: StepSucceeded, Time: at, RunID: "r42", Step: "s42", Action: "a42", Attempt: 42,
		State: "s42", Level: "l42", Message: "m42", Error: "e42", Hint: "h42", Kind: "k42", Current: 42, Total: 42,
		Unit: "u42", DelayMS: 42, DurationMS: 42, Fields: map[string]string{"f42": "v42"},
		Outputs: map[string]any{"o42": map[string]any{"k42": []any{int64(42), 42, 4.2, 0.5, json.Number("1042"), true, nil, "x42"}}}}
	got := in.Masked(mask)
	want := Event{V: 1, Type: StepSucceeded, Time: at, RunID: "r42", Step: "s***", Action: "a***", Attempt: 42,
		State: "s42", Level: "l42", Message: "m***", Error: "e***", Hint: "h***", Kind: "k42", Current: 42, Total: 42,
		Unit: "u***", DelayMS: 42, DurationMS: 42, Fields: map[string]string{"f42": "v***"},
		Outputs: map[string]any{"o42": map[string]any{"k***": []any{"***", "***", 4.2, 0.5, "10***", true, nil, "x***"}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if in.Fields["f42"] != "v42" || in.Outputs["o42"].(map[string]any)["k42"] == nil {
		t.Errorf("Masked changed the event it was given: %v", in)
	}
}

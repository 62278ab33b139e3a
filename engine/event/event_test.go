package event

import "testing"

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

package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name string
		p    Policy
		n    int
		want time.Duration
	}{
		{"zero policy", Policy{}, 3, 0},
		{"first retry waits base", Policy{Base: s, Max: time.Minute}, 1, s},
		{"n below one counts as one", Policy{Base: s}, 0, s},
		{"doubles", Policy{Base: s, Max: time.Minute}, 2, 2 * s},
		{"doubles again", Policy{Base: s, Max: time.Minute}, 4, 8 * s},
		{"capped", Policy{Base: s, Max: 5 * s}, 4, 5 * s},
		{"capped far out", Policy{Base: s, Max: 5 * s}, 1000, 5 * s},
		{"no cap", Policy{Base: 250 * time.Millisecond}, 3, s},
		{"no cap does not overflow", Policy{Base: s}, 200, maxDuration},
		{"fixed", Policy{Base: 3 * s, Max: s, Fixed: true}, 5, 3 * s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Delay(tt.n); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

// TestDelayJitter checks equal jitter: every wait lies in [d/2, d] of the
// nominal wait, and the draws differ.
func TestDelayJitter(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		n       int
		nominal time.Duration
	}{
		{"exponential", Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: true}, 3, 4 * time.Second},
		{"capped", Policy{Base: time.Second, Max: 5 * time.Second, Jitter: true}, 9, 5 * time.Second},
		{"fixed", Policy{Base: time.Second, Fixed: true, Jitter: true}, 9, time.Second},
		{"one nanosecond", Policy{Base: 1, Jitter: true}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for i := 0; i < 200; i++ {
				d := tt.p.Delay(tt.n)
				if d < tt.nominal/2 || d > tt.nominal {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.nominal/2, tt.nominal)
				}
				seen[d] = true
			}
			if tt.nominal > 1 && len(seen) < 2 {
				t.Errorf("200 draws gave one value: no jitter")
			}
		})
	}
}

func TestWait(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		p       Policy
		wantErr error
		atLeast time.Duration
	}{
		{"waits", context.Background(), Policy{Base: 20 * time.Millisecond, Fixed: true}, nil, 20 * time.Millisecond},
		{"zero wait", context.Background(), Policy{}, nil, 0},
		{"cancelled stops at once", cancelled, Policy{Base: time.Hour}, context.Canceled, 0},
		{"cancelled with zero wait", cancelled, Policy{}, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.p.Wait(tt.ctx, 1)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Wait = %v, want %v", err, tt.wantErr)
			}
			if el := time.Since(start); el < tt.atLeast || el > tt.atLeast+10*time.Second {
				t.Errorf("Wait took %v, want about %v", el, tt.atLeast)
			}
		})
	}
}

func TestSleepDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sleep = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Sleep took %v after the deadline", el)
	}
}

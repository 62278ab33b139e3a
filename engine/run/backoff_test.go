package run

import (
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/lang"
)

func TestBackoff(t *testing.T) {
	exp := &lang.Retry{Attempts: 10, Delay: time.Second, MaxDelay: 10 * time.Second, Backoff: "exponential"}
	for n, full := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 9: 10 * time.Second} {
		for i := 0; i < 20; i++ {
			if d := retryDelay(exp, n); d < full/2 || d > full {
				t.Fatalf("retry %d: %s not within [%s, %s]", n, d, full/2, full)
			}
		}
	}
	fixed := &lang.Retry{Attempts: 3, Delay: 3 * time.Second, Backoff: "fixed"}
	if d := retryDelay(fixed, 5); d != 3*time.Second {
		t.Errorf("fixed: %s", d)
	}
}

func TestParseKey(t *testing.T) {
	for addr, want := range map[string]cty.Value{`db["a b"]`: cty.StringVal("a b"), `db[3]`: cty.NumberIntVal(3), `db`: cty.NilVal} {
		got := parseKey("db", addr).Key
		if want == cty.NilVal {
			if got != cty.NilVal {
				t.Errorf("%s: %#v", addr, got)
			}
			continue
		}
		if got == cty.NilVal || !got.RawEquals(want) {
			t.Errorf("%s: got %#v want %#v", addr, got, want)
		}
		if lang.Address("db", got) != addr {
			t.Errorf("%s: address round trip gives %s", addr, lang.Address("db", got))
		}
	}
}

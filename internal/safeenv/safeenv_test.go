package safeenv

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFilter(t *testing.T) {
	in := []string{
		"PATH=/bin", "HOME=/home/u", "RUNBOOK_STATE_KEY=k", "RUNBOOK_STATE_KEY_FILE=/k",
		"RUNBOOK_VAR_pw=s3cret", "RUNBOOK_VAR_=x", "RUNBOOK_STATE_DIR=/s", "RUNBOOK_STATE_KEYS=x",
	}
	want := []string{"PATH=/bin", "HOME=/home/u", "RUNBOOK_STATE_DIR=/s", "RUNBOOK_STATE_KEYS=x"}
	if d := cmp.Diff(want, Filter(in)); d != "" {
		t.Errorf("Filter (-want +got):\n%s", d)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("RUNBOOK_STATE_KEY", "canary-key")
	t.Setenv("RUNBOOK_VAR_pw", "canary-pw")
	t.Setenv("SAFEENV_KEPT", "yes")
	got := map[string]bool{}
	for _, kv := range Environ() {
		got[kv] = true
	}
	if got["RUNBOOK_STATE_KEY=canary-key"] || got["RUNBOOK_VAR_pw=canary-pw"] || !got["SAFEENV_KEPT=yes"] {
		t.Errorf("Environ = %v", Environ())
	}
}

package session

import (
	"testing"

	"github.com/runbookdev/runbook/engine/journal"
)

// A key loaded once and given to sessions is the one their environment
// names, with the same fingerprint and source; a session given it does not
// read the environment's key again.
func TestSharedKeyIsTheEnvironmentsKey(t *testing.T) {
	env := map[string]string{journal.EnvStateKey: "a long enough passphrase for the tests"}
	getenv := func(k string) string { return env[k] }
	k, err := LoadKey(getenv)
	if err != nil {
		t.Fatal(err)
	}
	own, err := New(Options{Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	wantFP, wantSrc := own.KeyInfo()
	if wantFP == "" {
		t.Fatal("no key from the passphrase")
	}
	// Another key in the environment: Options.Key wins, nothing is derived.
	other := map[string]string{journal.EnvStateKey: "another passphrase, not used at all"}
	shared, err := New(Options{Key: k, Getenv: func(k string) string { return other[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if fp, src := shared.KeyInfo(); fp != wantFP || src != wantSrc {
		t.Errorf("shared key = %s (%s), want %s (%s)", fp, src, wantFP, wantSrc)
	}
	// What is sealed with one session opens with the other.
	m := &journal.Meta{ID: "run1", Key: wantFP}
	box := own.SealerFor(m).Seal([]byte("secret"))
	got, err := shared.SealerFor(m).Open(box)
	if err != nil || string(got) != "secret" {
		t.Errorf("open with the shared key = %q, %v", got, err)
	}
	if _, err := LoadKey(func(k string) string {
		if k == journal.EnvStateKeyFile {
			return "/nonexistent/state.key"
		}
		return ""
	}); err == nil {
		t.Error("LoadKey of a missing key file: no error")
	}
}

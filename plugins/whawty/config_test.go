package whawty

import (
	"strings"
	"testing"

	"github.com/runbookdev/runbook/plugins/whawty/whawtytest"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"current", whawtytest.Config("/s"), ""},
		{"empty params", "basedir: /s\n", ""},
		{"unknown key", whawtytest.Config("/s") + "extra: 1\n", "unknown key"},
		{"old format", "basedir: /s\ndefaultctx: 1\ncontexts: []\n", "pre-2023"},
		{"missing default", "basedir: /s\nparams:\n  - id: 3\n    argon2id: {time: 1, memory: 64, threads: 1, length: 32}\n", "default is missing"},
		{"default not in params", strings.Replace(whawtytest.Config("/s"), "default: 1", "default: 9", 1), "not in params"},
		{"short key", "basedir: /s\ndefault: 1\nparams:\n  - id: 1\n    scryptauth: {hmackey: \"QUFB\", cost: 4}\n", "32 bytes"},
		{"two algorithms", "basedir: /s\ndefault: 1\nparams:\n  - id: 1\n    argon2id: {time: 1}\n    scryptauth: {hmackey: \"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\"}\n", "exactly one"},
		{"no basedir", "default: 0\n", "basedir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.in))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigEditsKeepComments(t *testing.T) {
	src := whawtytest.Config("/s")
	c, err := parseConfig([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.addSet(&paramSet{ID: 5, Scrypt: &scryptParams{HMACKey: keyA, Cost: 10, R: 8, P: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.setDefault(5); err != nil {
		t.Fatal(err)
	}
	if err := c.removeSet(1); err != nil {
		t.Fatal(err)
	}
	out, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"# whawty.auth store config", "# the store", "# current default", "# argon", "default: 5", "- id: 5", "cost: 10"} {
		if !strings.Contains(s, want) {
			t.Errorf("edited config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "cost: 4") {
		t.Errorf("removed set still present:\n%s", s)
	}
	again, err := parseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if again.Default != 5 || len(again.Sets) != 2 || again.Sets[2].Argon2 == nil {
		t.Fatalf("re-parsed: %+v", again)
	}
	if err := c.addSet(&paramSet{ID: 2, Argon2: fastArgon.Argon2}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if err := c.removeSet(5); err == nil {
		t.Fatal("removing the default accepted")
	}
	if err := c.setDefault(42); err == nil {
		t.Fatal("unknown default accepted")
	}
}

func TestConfigUndoRedactsAndRestores(t *testing.T) {
	before := []byte(whawtytest.Config("/s"))
	c, _ := parseConfig(before)
	_ = c.setDefault(2)
	_ = c.removeSet(1)
	after, err := c.encode()
	if err != nil {
		t.Fatal(err)
	}
	u, err := newConfigUndo(location{Path: "/c"}, before, after)
	if err != nil {
		t.Fatal(err)
	}
	key := "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	if strings.Contains(string(u.Before), key) {
		t.Fatal("undo state holds the hmac key in the file copy")
	}
	if u.Keys["1"] != key {
		t.Fatalf("removed set's key not kept: %v", u.Keys)
	}
	got, err := u.restore(after)
	if err != nil || string(got) != string(before) {
		t.Fatalf("restore = %q, %v", got, err)
	}
	// An edit that keeps the set carries no key at all.
	c2, _ := parseConfig(before)
	_ = c2.setDefault(2)
	after2, _ := c2.encode()
	u2, err := newConfigUndo(location{Path: "/c"}, before, after2)
	if err != nil {
		t.Fatal(err)
	}
	if len(u2.Keys) != 0 || strings.Contains(string(u2.marshal()), key) {
		t.Fatal("undo state of a default switch holds a key")
	}
}

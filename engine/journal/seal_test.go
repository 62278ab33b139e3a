package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func secretValue() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{
		"user": cty.StringVal("admin"),
		"pass": cty.StringVal("canary-0xdeadbeef").Mark(MarkSensitive),
	})
}

// TestSealedValuesAreBound: a value sealed for one run and field opens
// only there: moved to another run or another field it fails.
func TestSealedValuesAreBound(t *testing.T) {
	key, _, err := ParseKey("correct horse battery staple", "test")
	if err != nil {
		t.Fatal(err)
	}
	run1 := key.ForRun(&Meta{ID: "run1", Key: key.Fingerprint()})
	run2 := key.ForRun(&Meta{ID: "run2", Key: key.Fingerprint()})
	jv, err := EncodeValue(secretValue(), run1.Bind("step.a", "inputs"))
	if err != nil {
		t.Fatal(err)
	}
	if got, complete, err := jv.Decode(run1.Bind("step.a", "inputs")); err != nil || !complete || !got.RawEquals(secretValue()) {
		t.Fatalf("same binding: %#v, %v, %v", got, complete, err)
	}
	for name, s := range map[string]*Sealer{
		"other run":   run2.Bind("step.a", "inputs"),
		"other step":  run1.Bind("step.b", "inputs"),
		"other field": run1.Bind("step.a", "outputs"),
	} {
		if _, _, err := jv.Decode(s); err == nil {
			t.Errorf("%s: a moved sealed value opened", name)
		} else if !strings.Contains(err.Error(), key.Fingerprint()) {
			t.Errorf("%s: error %q does not name the key", name, err)
		}
	}
	b := NewBlob([]byte("canary undo state"), true, run1.Bind("step.a", "undo_state"))
	if _, ok := b.Bytes(run2.Bind("step.a", "undo_state")); ok {
		t.Error("a blob moved to another run opened")
	}
	if d, ok := b.Bytes(run1.Bind("step.a", "undo_state")); !ok || string(d) != "canary undo state" {
		t.Errorf("blob = %q, %v", d, ok)
	}
}

// TestLegacySealedValues: values sealed by the first version (SHA-256 of
// the key, no binding) are still read in the runs made then.
func TestLegacySealedValues(t *testing.T) {
	const pass = "k-legacy"
	k := sha256.Sum256(append([]byte("runbook-state-key-v1\x00"), pass...))
	blk, _ := aes.NewCipher(k[:])
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	old := &Blob{Sealed: g.Seal(nonce, nonce, []byte("old secret"), nil)}
	s, _, _ := ParseKey(pass, "test")
	if d, ok := old.Bytes(s.ForRun(&Meta{ID: "old"}).Bind("a", "undo_state")); !ok || string(d) != "old secret" {
		t.Fatalf("legacy blob = %q, %v", d, ok)
	}
	// A run sealed with a bound key does not accept unbound values.
	if _, ok := old.Bytes(s.ForRun(&Meta{ID: "new", Key: s.Fingerprint()}).Bind("a", "undo_state")); ok {
		t.Fatal("an unbound value opened in a run whose values are bound")
	}
}

func TestParseKey(t *testing.T) {
	if _, _, err := ParseKey("  ", "RUNBOOK_STATE_KEY"); err == nil {
		t.Error("an empty key must be refused")
	}
	if _, w, err := ParseKey("short", "RUNBOOK_STATE_KEY"); err != nil || !strings.Contains(w, "5 characters") {
		t.Errorf("short passphrase: warning %q, %v", w, err)
	}
	if _, w, err := ParseKey("a long enough passphrase", "RUNBOOK_STATE_KEY"); err != nil || w != "" {
		t.Errorf("long passphrase: warning %q, %v", w, err)
	}
	a, _, _ := ParseKey("passphrase one!!", "x")
	b, _, _ := ParseKey("passphrase two!!", "x")
	if a.Fingerprint() == b.Fingerprint() || len(a.Fingerprint()) != 12 {
		t.Errorf("fingerprints %q %q", a.Fingerprint(), b.Fingerprint())
	}
}

// TestNewKeyFile: a random key, 0600 in a 0700 directory; concurrent
// creators end with one key; its content used as RUNBOOK_STATE_KEY is the
// same key.
func TestNewKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cfg", "runbook", "state.key")
	var wg sync.WaitGroup
	fps := make([]string, 4)
	for i := range fps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := NewKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			fps[i] = s.Fingerprint()
		}()
	}
	wg.Wait()
	for _, fp := range fps {
		if fp != fps[0] || fp == "" {
			t.Fatalf("fingerprints differ: %q", fps)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode = %v", di.Mode())
	}
	b, _ := os.ReadFile(path)
	s, w, err := ParseKey(string(b), "env")
	if err != nil || w != "" || s.Fingerprint() != fps[0] {
		t.Errorf("the key file's content as a key: %q, %q, %v", s.Fingerprint(), w, err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key others can read: %v", err)
	}
}

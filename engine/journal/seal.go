package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
)

// Environment variables that give the state key sensitive values are
// sealed with in the journal (see docs/cli.md, "The state key").
const (
	EnvStateKey     = "RUNBOOK_STATE_KEY"      // a passphrase, or a key file's content
	EnvStateKeyFile = "RUNBOOK_STATE_KEY_FILE" // a key file; NoKeyFile: store no secret
)

// NoKeyFile as RUNBOOK_STATE_KEY_FILE turns sealing off: secrets are not
// stored at all and resume and rollback ask for them again.
const NoKeyFile = "none"

// MinPassphrase is the length below which a passphrase in
// RUNBOOK_STATE_KEY draws a warning (argon2id slows guessing; it cannot
// make a short passphrase strong).
const MinPassphrase = 16

// Argon2id parameters for a passphrase: RFC 9106's second recommended
// option (3 passes, 64 MiB, 4 lanes). Derived once per process, on first
// use (a command that reads or writes no secret pays nothing): 1.1 s
// measured on 2 cores under a load of 11 (HKDF of a key file: 30 µs).
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
)

// sealedV2 starts every value sealed by this version (nonce and
// ciphertext follow); a value without it was sealed by the first version
// (a SHA-256 of the key, no associated data).
const sealedV2 = 0x02

// Sealer seals sensitive values with AES-256-GCM under a state key, bound
// (as associated data) to the run and the place in the run they belong
// to: a sealed value moved to another run, step or field does not open.
// A nil *Sealer means "no key": sensitive values are then not stored.
// A Sealer is safe for concurrent use.
type Sealer struct {
	k      *stateKey // shared by every bound copy
	ad     []byte    // associated data: a version tag and the Bind parts
	legacy bool      // also open values sealed by the first version
}

// stateKey is the key and what is derived from it, once.
type stateKey struct {
	source string // where it came from, for messages
	text   string // as given: a passphrase, or a key file's content
	raw    []byte // a random 32-byte key (key file), or nil for a passphrase

	once   sync.Once
	aead   cipher.AEAD // the sealing key: HKDF-SHA256 of the master key
	legacy cipher.AEAD // the first version's key (SHA-256 of text)
	fp     string      // fingerprint: names the key in run metadata and errors
}

// ParseKey reads a state key: a key file's content (32 random bytes in
// base64, as NewKeyFile writes) is used as is (HKDF-SHA256); any other
// text is a passphrase, stretched with argon2id. source says where it came
// from (an environment variable, a path) for messages. warning is set for
// a short passphrase; an empty key is refused.
func ParseKey(text, source string) (s *Sealer, warning string, err error) {
	if strings.TrimSpace(text) == "" {
		return nil, "", fmt.Errorf("the state key in %s is empty", source)
	}
	k := &stateKey{source: source, text: text}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text)); err == nil && len(b) == 32 {
		k.raw = b
	} else if n := len([]rune(text)); n < MinPassphrase {
		warning = fmt.Sprintf("the state key passphrase in %s has %d characters: use at least %d random ones, or a key file (`runbook init` makes one)", source, n, MinPassphrase)
	}
	return &Sealer{k: k, ad: []byte("runbook state v2")}, warning, nil
}

// NewSealer returns a Sealer for a passphrase or a key file's content
// (see ParseKey).
func NewSealer(secret []byte) (*Sealer, error) {
	s, _, err := ParseKey(string(secret), "the state key")
	return s, err
}

// ReadKeyFile reads the state key in path. A key file others can read is
// refused.
func ReadKeyFile(path string) (*Sealer, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read the state key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && filepath.Separator == '/' {
		return nil, "", fmt.Errorf("the state key %s can be read by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	return ParseKey(strings.TrimSpace(string(b)), path)
}

// NewKeyFile creates a random state key in path (mode 0600, its directory
// 0700) unless one is there already, and returns the key in path. Two
// processes creating it at once end with the same key.
func NewKeyFile(path string) (*Sealer, error) {
	if _, err := os.Stat(path); err == nil {
		s, _, err := ReadKeyFile(path)
		return s, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the state key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".state.key-*")
	if err != nil {
		return nil, fmt.Errorf("create the state key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create the state key: %w", err)
	}
	// A link never replaces an existing file: whoever comes second reads
	// the first one's key.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create the state key: %w", err)
	}
	s, _, err := ReadKeyFile(path)
	return s, err
}

func (k *stateKey) derive() {
	k.once.Do(func() {
		master := k.raw
		if master == nil {
			master = argon2.IDKey([]byte(k.text), []byte("runbook state key v2"), argonTime, argonMemory, argonThreads, 32)
		}
		sub := func(info string) []byte {
			out := make([]byte, 32)
			if _, err := io.ReadFull(hkdf.New(sha256.New, master, nil, []byte(info)), out); err != nil {
				panic("hkdf: " + err.Error()) // cannot happen: 32 bytes of SHA-256 HKDF
			}
			return out
		}
		k.aead = gcm(sub("runbook state seal v2"))
		k.fp = hex.EncodeToString(sub("runbook state key fingerprint v2")[:6])
		old := sha256.Sum256(append([]byte("runbook-state-key-v1\x00"), k.text...))
		k.legacy = gcm(old[:])
	})
}

func gcm(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // cannot happen: a 32-byte key
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// Fingerprint names the key (12 hex digits, derived with HKDF: it tells
// nothing about the key). "" for nil.
func (s *Sealer) Fingerprint() string {
	if s == nil {
		return ""
	}
	s.k.derive()
	return s.k.fp
}

// Source says where the key came from (an environment variable or a
// key file's path).
func (s *Sealer) Source() string {
	if s == nil {
		return ""
	}
	return s.k.source
}

// Bind returns s bound to parts as well (a run id, a step address, a
// field): what it seals opens only with the same binding. Nil stays nil.
func (s *Sealer) Bind(parts ...string) *Sealer {
	if s == nil {
		return nil
	}
	ad := append([]byte(nil), s.ad...)
	for _, p := range parts {
		ad = binary.AppendUvarint(ad, uint64(len(p)))
		ad = append(ad, p...)
	}
	return &Sealer{k: s.k, ad: ad, legacy: s.legacy}
}

// ForRun binds s to run m. A run journaled before sealed values were
// bound (no key fingerprint in its metadata) is read with the first
// version's key too.
func (s *Sealer) ForRun(m *Meta) *Sealer {
	b := s.Bind(m.ID)
	if b != nil {
		b.legacy = m.Key == ""
	}
	return b
}

// Seal encrypts plain: version, nonce, ciphertext.
func (s *Sealer) Seal(plain []byte) []byte {
	s.k.derive()
	n := s.k.aead.NonceSize()
	out := make([]byte, 1+n, 1+n+len(plain)+s.k.aead.Overhead())
	out[0] = sealedV2
	if _, err := rand.Read(out[1:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on supported systems
	}
	return s.k.aead.Seal(out, out[1:], plain, s.ad)
}

// Open decrypts what Seal produced with the same key and binding.
func (s *Sealer) Open(b []byte) ([]byte, error) {
	s.k.derive()
	n := s.k.aead.NonceSize()
	if len(b) > 1+n && b[0] == sealedV2 {
		if out, err := s.k.aead.Open(nil, b[1:1+n], b[1+n:], s.ad); err == nil {
			return out, nil
		}
	}
	if s.legacy && len(b) > n {
		if out, err := s.k.legacy.Open(nil, b[:n], b[n:], nil); err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("cannot decrypt a sensitive value with the state key %s (from %s): the run was sealed with another key, or the value was moved", s.Fingerprint(), s.Source())
}

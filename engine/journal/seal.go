package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables that give the key sensitive values are encrypted
// with in the journal.
const (
	EnvStateKey     = "RUNBOOK_STATE_KEY"      // the key itself (any string; high entropy please)
	EnvStateKeyFile = "RUNBOOK_STATE_KEY_FILE" // a file holding it
)

// Sealer encrypts sensitive values with AES-256-GCM. A nil *Sealer means
// "no key": sensitive values are then not stored at all.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer derives an AES-256 key from secret (SHA-256 with a domain
// prefix) and returns a Sealer.
func NewSealer(secret []byte) (*Sealer, error) {
	if len(secret) == 0 {
		return nil, errors.New("empty state key")
	}
	k := sha256.Sum256(append([]byte("runbook-state-key-v1\x00"), secret...))
	b, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: g}, nil
}

// SealerFromEnv reads RUNBOOK_STATE_KEY, then RUNBOOK_STATE_KEY_FILE.
// It returns nil, nil when neither is set.
func SealerFromEnv(getenv func(string) string) (*Sealer, error) {
	if k := getenv(EnvStateKey); k != "" {
		return NewSealer([]byte(k))
	}
	if p := getenv(EnvStateKeyFile); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", EnvStateKeyFile, err)
		}
		return NewSealer([]byte(strings.TrimSpace(string(b))))
	}
	return nil, nil
}

// Seal encrypts plain: nonce || ciphertext.
func (s *Sealer) Seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on supported systems
	}
	return s.aead.Seal(nonce, nonce, plain, nil)
}

// Open decrypts what Seal produced.
func (s *Sealer) Open(b []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(b) < n {
		return nil, errors.New("sealed value too short")
	}
	out, err := s.aead.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return nil, errors.New("cannot decrypt a sensitive value: wrong RUNBOOK_STATE_KEY?")
	}
	return out, nil
}

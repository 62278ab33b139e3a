package whawty

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"
)

// Format ids as they appear in line 1 of a hash file.
const (
	formatScrypt   = "hmac_sha256_scrypt"
	formatArgon2ID = "argon2id"
)

// scryptParams is one scryptauth parameter-set.
type scryptParams struct {
	HMACKey []byte // exactly 32 bytes
	Cost    uint   // N = 1<<Cost
	R, P    int
}

// argon2Params is one argon2id parameter-set (Memory in KiB).
type argon2Params struct {
	Time, Memory, Length uint32
	Threads              uint8
}

// scryptHMAC computes HMAC-SHA256(key, scrypt(pw, salt, 1<<cost, r, p, 32)).
func scryptHMAC(p scryptParams, password string, salt []byte) ([]byte, error) {
	if p.Cost < 1 || p.Cost > 31 {
		return nil, fmt.Errorf("scrypt cost %d out of range 1..31", p.Cost)
	}
	s, err := scrypt.Key([]byte(password), salt, 1<<p.Cost, p.R, p.P, 32)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, p.HMACKey)
	m.Write(s)
	return m.Sum(nil), nil
}

// argon2Tag computes argon2id with p, refusing values that would make the
// library panic.
func argon2Tag(p argon2Params, password string, salt []byte) ([]byte, error) {
	if p.Time == 0 || p.Threads == 0 || p.Length == 0 {
		return nil, fmt.Errorf("argon2id time, threads and length must be > 0")
	}
	return argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.Length), nil
}

// verifyHash checks password against a parsed hash line with the set it
// names. It returns false without error on a mismatch.
func verifyHash(h hashLine, set *paramSet, password string) (bool, error) {
	if set == nil {
		return false, fmt.Errorf("parameter-set %d is unknown", h.ParamID)
	}
	if set.format() != h.Format {
		return false, fmt.Errorf("hash format %s does not match parameter-set %d (%s)", h.Format, h.ParamID, set.format())
	}
	var got []byte
	var err error
	switch h.Format {
	case formatScrypt:
		got, err = scryptHMAC(*set.Scrypt, password, h.Salt)
	case formatArgon2ID:
		got, err = argon2Tag(*set.Argon2, password, h.Salt)
	default:
		return false, fmt.Errorf("unsupported hash format %q", h.Format)
	}
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, h.Hash) == 1, nil
}

// b64url is the encoding whawty uses for salts and hashes.
var b64url = base64.URLEncoding

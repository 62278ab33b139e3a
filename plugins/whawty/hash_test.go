package whawty

import (
	"encoding/hex"
	"testing"
)

// TestScryptVector is scryptauth's own test vector.
func TestScryptVector(t *testing.T) {
	salt, _ := hex.DecodeString("1eb1f34384b4d7a05f7d9d939b02d16188888207d29a4c0a744b5dd4f93f6fe2")
	got, err := scryptHMAC(scryptParams{HMACKey: keyA, Cost: 12, R: 8, P: 1}, "bar", salt)
	if err != nil {
		t.Fatal(err)
	}
	const want = "dd39ebb20e7e41a33b3acc91bea701bfda92fa3a86c734485d0aaf6d351ff3de"
	if hex.EncodeToString(got) != want {
		t.Fatalf("scrypt-hmac = %x, want %s", got, want)
	}
	// The same vector through a hash line and verifyHash.
	h := hashLine{Format: formatScrypt, LastChange: 1, ParamID: 7, Salt: salt, Hash: got}
	parsed, err := parseHashFile([]byte(formatHashLine(h) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	set := &paramSet{ID: 7, Scrypt: &scryptParams{HMACKey: keyA, Cost: 12, R: 8, P: 1}}
	for pw, want := range map[string]bool{"bar": true, "baz": false, "": false} {
		ok, err := verifyHash(parsed, set, pw)
		if err != nil || ok != want {
			t.Errorf("verify %q = %v, %v; want %v", pw, ok, err, want)
		}
	}
}

func TestArgon2RoundTrip(t *testing.T) {
	h, err := parseHashFile([]byte(hashFor(t, fastArgon, "secret")))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := verifyHash(h, fastArgon, "secret"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := verifyHash(h, fastArgon, "wrong"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, err := verifyHash(h, fastScrypt, "secret"); err == nil {
		t.Fatal("format mismatch not reported")
	}
	if _, err := argon2Tag(argon2Params{Time: 0, Memory: 64, Threads: 1, Length: 32}, "x", []byte("salt")); err == nil {
		t.Fatal("time 0 accepted (x/crypto would panic)")
	}
}

func TestParseHashFile(t *testing.T) {
	good := hashFor(t, fastScrypt, "pw")
	tests := []struct {
		name, in string
		wantErr  bool
		legacy   bool
	}{
		{"scrypt", good, false, false},
		{"aux lines kept", good + "totp: AAAA\n", false, false},
		{"no newline", good[:len(good)-1], false, false},
		{"empty", "", true, false},
		{"legacy v0.1", "17:QUFB:QkJC\n", true, true},
		{"unknown format", "md5:1:1:QUFB:QkJC\n", true, false},
		{"param 0", "argon2id:1:0:QUFB:QkJC\n", true, false},
		{"three parts", "argon2id:1:1:QUFB:QkJC:x\n", true, false},
		{"bad base64", "argon2id:1:1:***:QkJC\n", true, false},
		{"short scrypt hash", "hmac_sha256_scrypt:1:1:QUFB:QkJC\n", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHashFile([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if (err == errLegacyLayout) != tt.legacy {
				t.Fatalf("legacy = %v, want %v", err == errLegacyLayout, tt.legacy)
			}
		})
	}
}

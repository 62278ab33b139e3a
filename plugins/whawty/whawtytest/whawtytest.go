// Package whawtytest holds what the whawty plugin's tests and the tests of
// the runbooks using it share: a whawty.auth store config and its key.
package whawtytest

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// HMACKey is the scrypt set's hmac key: 32 ASCII 'A'.
var HMACKey = []byte(strings.Repeat("A", 32))

// Config is a store config for the store at basedir, with comments: set 1
// (scrypt, cost 4, HMACKey; the default) and set 2 (argon2id: time 1,
// memory 64, one thread, 32 bytes).
func Config(basedir string) string {
	return fmt.Sprintf(`# whawty.auth store config
basedir: "%s" # the store

default: 1   # current default
params:
  # the old scrypt set
  - id: 1
    scryptauth:
      hmackey: "%s"
      cost: 4
  - id: 2 # argon
    argon2id: {time: 1, memory: 64, threads: 1, length: 32}
`, basedir, base64.StdEncoding.EncodeToString(HMACKey))
}

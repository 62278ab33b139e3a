package whawty

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// hashLine is line 1 of a hash file:
// <formatID>:<lastchange>:<paramID>:<b64url(salt)>:<b64url(hash)>.
type hashLine struct {
	Format     string
	LastChange int64
	ParamID    uint64
	Salt, Hash []byte
}

// errLegacyLayout marks a v0.1 file (<ctxID>:<b64 hash>:<b64 salt>), which
// current whawty cannot authenticate.
var errLegacyLayout = errors.New("v0.1 layout (<ctxID>:<hash>:<salt>); re-add the user with a current whawty")

// parseHashFile parses line 1 of a hash file's content, the way whawty
// does but stricter: the trailing newline is trimmed and both base64 fields
// must decode.
func parseHashFile(content []byte) (hashLine, error) {
	line := string(content)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return hashLine{}, errors.New("empty hash line")
	}
	f := strings.SplitN(line, ":", 4)
	if len(f) == 3 {
		if _, err := strconv.ParseUint(f[0], 10, 64); err == nil {
			return hashLine{}, errLegacyLayout
		}
	}
	if len(f) != 4 {
		return hashLine{}, fmt.Errorf("hash line has %d fields, want format:lastchange:paramid:salt:hash", len(f)+1)
	}
	var h hashLine
	h.Format = f[0]
	if h.Format != formatScrypt && h.Format != formatArgon2ID {
		return hashLine{}, fmt.Errorf("unknown hash format %q", h.Format)
	}
	lc, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return hashLine{}, fmt.Errorf("bad lastchange %q", f[1])
	}
	h.LastChange = lc
	id, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil || id == 0 {
		return hashLine{}, fmt.Errorf("bad parameter-set id %q", f[2])
	}
	h.ParamID = id
	sh := strings.Split(f[3], ":")
	if len(sh) != 2 {
		return hashLine{}, errors.New("want exactly salt:hash after the parameter-set id")
	}
	if h.Salt, err = b64url.DecodeString(sh[0]); err != nil || len(h.Salt) == 0 {
		return hashLine{}, fmt.Errorf("bad salt: not base64url")
	}
	if h.Hash, err = b64url.DecodeString(sh[1]); err != nil || len(h.Hash) == 0 {
		return hashLine{}, fmt.Errorf("bad hash: not base64url")
	}
	if h.Format == formatScrypt && len(h.Hash) != 32 {
		return hashLine{}, fmt.Errorf("scrypt hash is %d bytes, want 32", len(h.Hash))
	}
	return h, nil
}

// formatHashLine renders h as whawty writes it (without the newline).
func formatHashLine(h hashLine) string {
	return fmt.Sprintf("%s:%d:%d:%s:%s", h.Format, h.LastChange, h.ParamID,
		b64url.EncodeToString(h.Salt), b64url.EncodeToString(h.Hash))
}

package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// selfSumCacheFile keeps the sha256 of the last runbook binary seen, with
// the identity of the file it was computed from (device, inode, size,
// modification and change times). Hashing a 30+ MB binary costs tens of
// milliseconds of CPU on every run otherwise; the change time cannot be
// set back by a user, so a binary replaced or modified in place never
// matches a stale entry.
const selfSumCacheFile = "self-sha256"

// cachedFileSHA256 is FileSHA256 of path, remembered across runs in the
// user's cache directory (best effort: any problem means hashing).
func cachedFileSHA256(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return FileSHA256(path)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return FileSHA256(path)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	dir, derr := os.UserCacheDir()
	if !ok || derr != nil {
		return FileSHA256(path)
	}
	key := fmt.Sprintf("%s\x00%d:%d:%d:%d.%d:%d.%d", abs, sys.Dev, sys.Ino, sys.Size,
		sys.Mtim.Sec, sys.Mtim.Nsec, sys.Ctim.Sec, sys.Ctim.Nsec)
	file := filepath.Join(dir, "runbook", selfSumCacheFile)
	if b, err := os.ReadFile(file); err == nil {
		if k, sum, ok := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n"); ok && k == key && isHexSHA256(sum) {
			return sum, nil
		}
	}
	sum, err := FileSHA256(abs)
	if err != nil {
		return "", err
	}
	// The file must not have changed while it was hashed.
	if st2, err := os.Stat(abs); err == nil {
		if sys2, ok := st2.Sys().(*syscall.Stat_t); ok && sys2.Ctim == sys.Ctim && sys2.Mtim == sys.Mtim && sys2.Size == sys.Size {
			if os.MkdirAll(filepath.Dir(file), 0o700) == nil {
				if tmp, err := os.CreateTemp(filepath.Dir(file), selfSumCacheFile+".*"); err == nil {
					_, werr := tmp.WriteString(key + "\n" + sum + "\n")
					if cerr := tmp.Close(); werr == nil && cerr == nil {
						if os.Rename(tmp.Name(), file) != nil {
							os.Remove(tmp.Name())
						}
					} else {
						os.Remove(tmp.Name())
					}
				}
			}
		}
	}
	return sum, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

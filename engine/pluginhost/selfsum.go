package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// selfSumCacheFile keeps the sha256 of the last few runbook binaries seen
// (selfSumCacheSize), each with the identity of the file it was computed
// from (device, inode, size, modification and change times): a line with
// the identity, a line with the sum, newest first. Hashing a 30+ MB binary costs tens of
// milliseconds of CPU on every run otherwise; the change time cannot be
// set back by a user, so a binary replaced or modified in place never
// matches a stale entry.
const selfSumCacheFile = "self-sha256"

// selfSumCacheSize is how many binaries the cache remembers: a pinned
// version and a development build used in turn should both stay cached.
const selfSumCacheSize = 8

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
	if strings.Contains(abs, "\n") {
		return FileSHA256(path)
	}
	file := filepath.Join(dir, "runbook", selfSumCacheFile)
	var entries []string // key, sum, key, sum...
	if b, err := os.ReadFile(file); err == nil {
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			k, sum := lines[i], lines[i+1]
			if !isHexSHA256(sum) {
				break // not ours: start afresh
			}
			if k == key {
				return sum, nil
			}
			entries = append(entries, k, sum)
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
					entries = append([]string{key, sum}, entries...)
					entries = entries[:min(len(entries), 2*selfSumCacheSize)]
					_, werr := tmp.WriteString(strings.Join(entries, "\n") + "\n")
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

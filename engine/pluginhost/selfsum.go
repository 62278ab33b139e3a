package pluginhost

import (
	"os"
	"path/filepath"
	"strings"
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
	id, ok := fileIdentity(abs)
	dir, derr := os.UserCacheDir()
	if !ok || derr != nil {
		return FileSHA256(path)
	}
	key := abs + "\x00" + id
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
	if id2, ok := fileIdentity(abs); ok && id2 == id {
		entries = append([]string{key, sum}, entries...)
		storeSums(file, entries[:min(len(entries), 2*selfSumCacheSize)])
	}
	return sum, nil
}

// storeSums replaces the cache file with entries (best effort).
func storeSums(file string, entries []string) {
	if os.MkdirAll(filepath.Dir(file), 0o700) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), selfSumCacheFile+".*")
	if err != nil {
		return
	}
	_, werr := tmp.WriteString(strings.Join(entries, "\n") + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
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

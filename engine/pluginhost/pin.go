package pluginhost

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/runbookdev/runbook/sdk"
)

// An external plugin is hashed and executed as the same bytes: pin opens
// the binary once, hashes what it reads through that descriptor, and the
// host executes a private copy of exactly those bytes, in a directory only
// this user can write (Options.PluginCache/<sha256>/). Checking a path and
// then executing the same path (go-plugin's SecureConfig) lets whoever can
// swap the file in between run a program that was never checked.

// pinned is an external plugin ready to execute.
type pinned struct {
	// exe is the private copy to execute.
	exe string
	// sha256 is the hex sha256 of exe's bytes, as read from the plugin.
	sha256 string
	// cleanup removes a copy that is not kept for reuse (nil: kept).
	cleanup func()
}

// pin makes the private copy of the plugin at path. check, given the sha256
// of the bytes read, refuses them (a lock mismatch) before anything is
// copied.
func (h *Host) pin(name, path string, check func(sum string) error) (*pinned, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	if err := checkPlacement(name, filepath.Dir(real), true, nil); err != nil {
		return nil, err
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &sdk.Error{Kind: sdk.KindInvalid, Err: fmt.Errorf("plugin %s: %s is not a regular file", name, real)}
	}
	if err := checkPlacement(name, real, false, st); err != nil {
		return nil, err
	}
	sum, err := readerSHA256(f)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: read %s: %w", name, real, err)
	}
	if err := check(sum); err != nil {
		return nil, err
	}
	dir, cleanup, err := h.copyDir(sum)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", name, err)
	}
	exe := filepath.Join(dir, exeName(BinaryName(name)))
	if cleanup == nil {
		if got, err := FileSHA256(exe); err == nil && got == sum {
			return &pinned{exe: exe, sha256: sum}, nil
		}
	}
	if err := copyPinned(f, exe, sum); err != nil {
		if cleanup != nil {
			cleanup()
		}
		// The file changed while it was read: what runs must be what was
		// checked, so refuse rather than read it a third time.
		return nil, fmt.Errorf("plugin %s: copy %s: %w", name, real, err)
	}
	return &pinned{exe: exe, sha256: sum, cleanup: cleanup}, nil
}

// copyPinned copies f (from its start) to exe through a temporary file,
// checking that the bytes copied hash to sum.
func copyPinned(f *os.File, exe, sum string) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(exe), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	hash := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, hash), f)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != sum {
		return fmt.Errorf("the file changed while it was read (sha256 %s, then %s)", short(sum), short(got))
	}
	if err := os.Chmod(tmp.Name(), 0o700); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), exe)
}

// copyDir is the private directory for the copy of the binary whose sha256
// is sum: Options.PluginCache/<sum>, kept for later runs, or (when that is
// not a directory only this user can write) a fresh temporary directory
// removed by cleanup.
func (h *Host) copyDir(sum string) (dir string, cleanup func(), err error) {
	if base := h.pluginCache(); base != "" {
		dir := filepath.Join(base, sum)
		if os.MkdirAll(dir, 0o700) == nil && privateDir(dir) && privateDir(base) {
			return dir, nil, nil
		}
	}
	dir, err = os.MkdirTemp("", "runbook-plugin-")
	if err != nil {
		return "", nil, fmt.Errorf("private copy: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// pluginCache is Options.PluginCache, or the user's cache directory's
// runbook/plugins ("" when there is none).
func (h *Host) pluginCache() string {
	if h.opts.PluginCache != "" {
		return h.opts.PluginCache
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "runbook", "plugins")
}

// placementError refuses a plugin that other users could replace.
func placementError(name, path string, isDir bool, mode fs.FileMode) error {
	what := "the plugin " + path
	fix := "chmod go-w " + path
	if isDir {
		what = "its directory " + path
	}
	return &sdk.Error{
		Kind: sdk.KindInvalid,
		Hint: "a plugin runs with your rights: keep it where only you (or root) can change it, e.g. `" + fix + "`",
		Err: fmt.Errorf("plugin %s: refusing to run it: %s is writable by its group or by other users (mode %s)",
			name, what, strings.TrimPrefix(mode.Perm().String(), "-")),
	}
}

// readerSHA256 is the hex sha256 of everything r yields.
func readerSHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errTextBusy reports an exec that failed because a file descriptor for
// writing the binary was still open in a forked child (a copy written
// while another plugin started): trying again succeeds.
func errTextBusy(err error) bool {
	return err != nil && (errors.Is(err, errETXTBSY) || strings.Contains(err.Error(), "text file busy"))
}

package pluginhost

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// LockFileName is the lock file written by `runbook init` beside a runbook.
const LockFileName = ".runbook.lock.hcl"

// LockFile pins every external plugin to the sha256 of its executable.
type LockFile struct {
	// Plugins by name.
	Plugins map[string]*LockedPlugin
}

// LockedPlugin is one `plugin "NAME" { ... }` block of the lock file.
type LockedPlugin struct {
	Name    string `hcl:"name,label"`
	Version string `hcl:"version,optional"`
	SHA256  string `hcl:"sha256"`
	Source  string `hcl:"source,optional"`
}

type lockFileHCL struct {
	Plugins []*LockedPlugin `hcl:"plugin,block"`
}

// ReadLockFile reads a lock file; a missing file gives (nil, nil).
func ReadLockFile(path string) (*LockFile, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock file: %w", err)
	}
	return ParseLockFile(path, src)
}

// ParseLockFile parses lock file content.
func ParseLockFile(name string, src []byte) (*LockFile, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, name)
	if diags.HasErrors() {
		return nil, fmt.Errorf("lock file %s: %s", name, diags.Error())
	}
	var raw lockFileHCL
	if diags := gohcl.DecodeBody(f.Body, nil, &raw); diags.HasErrors() {
		return nil, fmt.Errorf("lock file %s: %s", name, diags.Error())
	}
	lf := &LockFile{Plugins: map[string]*LockedPlugin{}}
	for _, p := range raw.Plugins {
		if _, dup := lf.Plugins[p.Name]; dup {
			return nil, fmt.Errorf("lock file %s: plugin %q is listed twice", name, p.Name)
		}
		if _, err := hex.DecodeString(p.SHA256); err != nil || len(p.SHA256) != 64 {
			return nil, fmt.Errorf("lock file %s: plugin %q: sha256 must be 64 hex digits", name, p.Name)
		}
		lf.Plugins[p.Name] = p
	}
	return lf, nil
}

// Bytes renders the lock file, plugins sorted by name.
func (lf *LockFile) Bytes() []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	names := make([]string, 0, len(lf.Plugins))
	for n := range lf.Plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	body.AppendUnstructuredTokens(hclwrite.TokensForIdentifier("# This file is maintained by `runbook init`. Commit it.\n"))
	for _, n := range names {
		p := lf.Plugins[n]
		body.AppendNewline()
		b := body.AppendNewBlock("plugin", []string{n}).Body()
		if p.Version != "" {
			b.SetAttributeValue("version", cty.StringVal(p.Version))
		}
		b.SetAttributeValue("sha256", cty.StringVal(p.SHA256))
		if p.Source != "" {
			b.SetAttributeValue("source", cty.StringVal(p.Source))
		}
	}
	return hclwrite.Format(f.Bytes())
}

// Write writes the lock file atomically.
func (lf *LockFile) Write(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, lf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerSHA256(f)
}

// Plugin returns the named entry, or nil (also on a nil LockFile).
func (lf *LockFile) Plugin(name string) *LockedPlugin {
	if lf == nil {
		return nil
	}
	return lf.Plugins[name]
}

// Check says why the binary whose sha256 is sum may not run as plugin
// name: nil when the lock file pins that checksum; an error saying "not
// locked" when it has no entry (also on a nil LockFile), or "checksum
// mismatch" with both sums.
func (lf *LockFile) Check(name, sum string) error {
	locked := lf.Plugin(name)
	switch {
	case locked == nil:
		return fmt.Errorf("not locked: run `runbook init`")
	case locked.SHA256 != sum:
		return fmt.Errorf("checksum mismatch: %s has sha256 %s, the binary found is %s; if you trust it, run `runbook init -upgrade`",
			LockFileName, short(locked.SHA256), short(sum))
	}
	return nil
}

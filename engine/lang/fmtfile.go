package lang

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// HCLFiles lists the *.hcl files under p (p itself when it is a file),
// not those in hidden directories, nor in subdirectories unless recursive.
func HCLFiles(p string, recursive bool) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".hcl") && !strings.HasPrefix(d.Name(), ".") {
			out = append(out, path)
		}
		return nil
	})
	return out, err
}

// FormatHCL returns the canonical form of src; it refuses files with
// syntax errors rather than guess.
func FormatHCL(name string, src []byte) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// SourceConfig is a config holding only one file's source, for printing
// that file's diagnostics with snippets.
func SourceConfig(name string, src []byte) *Config {
	f, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	return &Config{Files: map[string]*hcl.File{name: f}}
}

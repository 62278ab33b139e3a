package lang

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclparse"
)

// DirFiles lists the runbook files directly inside dir (IsRunbookFile),
// sorted.
func DirFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && IsRunbookFile(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// SeparateRunbooks says whether the runbook files of a directory cannot
// form one runbook, and why: in a directory every file belongs to one
// runbook whose names are shared across files, so two files that each
// have a `runbook` block, or that declare the same step, variable, local,
// output or plugin, are separate runbooks kept side by side. Files that
// do not parse are read as far as they do.
func SeparateRunbooks(files []string) (bool, string) {
	p := hclparse.NewParser()
	declared := map[string]string{} // "step \"x\"" -> the first file declaring it
	var books []string              // files with a runbook block
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		parse := p.ParseHCL
		if strings.HasSuffix(name, ".json") {
			parse = p.ParseJSON
		}
		f, _ := parse(src, name)
		if f == nil {
			continue
		}
		content, _, _ := f.Body.PartialContent(rootSchema)
		for _, b := range content.Blocks {
			var keys []string
			switch b.Type {
			case "runbook":
				if books = append(books, name); len(books) == 2 {
					return true, fmt.Sprintf("%s and %s each have a runbook block", filepath.Base(books[0]), filepath.Base(books[1]))
				}
				continue
			case "locals":
				attrs, _ := b.Body.JustAttributes()
				for n := range attrs {
					keys = append(keys, fmt.Sprintf("local %q", n))
				}
			case "step":
				keys = append(keys, fmt.Sprintf("step %q", b.Labels[len(b.Labels)-1]))
			default:
				keys = append(keys, fmt.Sprintf("%s %q", b.Type, b.Labels[0]))
			}
			for _, k := range keys {
				// (A name declared twice in one file is that file's
				// own mistake.)
				if prev, ok := declared[k]; !ok {
					declared[k] = name
				} else if prev != name {
					return true, fmt.Sprintf("%s is declared in both %s and %s", k, filepath.Base(prev), filepath.Base(name))
				}
			}
		}
	}
	return false, ""
}

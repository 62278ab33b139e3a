package lang

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// IsRunbookFile reports whether a file name is loaded from a directory:
// *.hcl and *.runbook.json, except hidden files (such as the lock file),
// variable files (*.vars.hcl) and test files (*.runbooktest.hcl, see
// `runbook test`).
func IsRunbookFile(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, ".") || strings.HasSuffix(base, ".vars.hcl") || strings.HasSuffix(base, ".runbooktest.hcl") {
		return false
	}
	return strings.HasSuffix(base, ".hcl") || strings.HasSuffix(base, ".runbook.json")
}

// Load reads runbook files (*.hcl, *.runbook.json or *.json) or directories
// (every *.hcl and *.runbook.json directly inside) as one runbook. Relative
// paths in file functions resolve against the directory of the first path.
func Load(paths ...string) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if len(paths) == 0 {
		paths = []string{"."}
	}
	files := map[string][]byte{}
	var order []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read runbook", Detail: err.Error()})
			continue
		}
		names := []string{p}
		if st.IsDir() {
			ents, err := os.ReadDir(p)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read runbook directory", Detail: err.Error()})
				continue
			}
			names = names[:0]
			for _, e := range ents {
				if !e.IsDir() && IsRunbookFile(e.Name()) {
					names = append(names, filepath.Join(p, e.Name()))
				}
			}
			if len(names) == 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No runbook files",
					Detail: fmt.Sprintf("Directory %s holds no *.hcl or *.runbook.json file.", p)})
			}
		}
		for _, n := range names {
			if _, dup := files[n]; dup {
				continue
			}
			b, d := readSource(n, "runbook file")
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			files[n] = b
			order = append(order, n)
		}
	}
	base := "."
	if len(paths) > 0 {
		if st, err := os.Stat(paths[0]); err == nil && st.IsDir() {
			base = paths[0]
		} else {
			base = filepath.Dir(paths[0])
		}
	}
	cfg, d := load(files, order, base)
	return cfg, append(diags, d...)
}

// LoadSources loads a runbook from in-memory files (name -> content). Names
// ending in .json use the JSON syntax; everything else the native syntax.
func LoadSources(files map[string][]byte) (*Config, hcl.Diagnostics) {
	order := make([]string, 0, len(files))
	for n := range files {
		order = append(order, n)
	}
	sort.Strings(order)
	return load(files, order, ".")
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "runbook", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "step", LabelNames: []string{"type", "name"}},
	},
}

func newConfig(base string) *Config {
	return &Config{
		Variables: map[string]*Variable{},
		Locals:    map[string]*Local{},
		Steps:     map[string]*Step{},
		Outputs:   map[string]*Output{},
		Plugins:   map[string]*PluginReq{},
		Files:     map[string]*hcl.File{},
		Sources:   map[string][]byte{},
		BaseDir:   base,
		badRefs:   map[hcl.Range]bool{},
		inputs:    &inputCache{m: map[string]actionInputs{}},
		localMemo: newLocalCache(),
	}
}

func load(files map[string][]byte, order []string, base string) (*Config, hcl.Diagnostics) {
	cfg := newConfig(base)
	p := hclparse.NewParser()
	var diags hcl.Diagnostics
	var bodies []*hcl.File
	for _, name := range order {
		src := files[name]
		cfg.Sources[name] = src
		if d := checkInput(name, src, syntaxOf(name)); d.HasErrors() {
			// Refuse the file: parsing it could crash, evaluating its
			// numbers could take minutes. Its diagnostics show its source.
			diags = append(diags, d...)
			cfg.keepSource(name, src)
			continue
		}
		var f *hcl.File
		var d hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, d = p.ParseJSON(src, name)
		} else {
			f, d = p.ParseHCL(src, name)
		}
		diags = append(diags, d...)
		if f == nil {
			continue
		}
		cfg.Files[name] = f
		bodies = append(bodies, f)
	}
	for _, f := range bodies {
		diags = append(diags, cfg.decodeFile(f)...)
	}
	diags = append(diags, cfg.resolve()...)
	return cfg, uniqueDiags(diags)
}

// keepSource keeps src under name for diagnostic snippets, unless a file
// of that name is already known.
func (c *Config) keepSource(name string, src []byte) {
	if _, ok := c.Files[name]; ok {
		return
	}
	if c.varFiles == nil {
		c.varFiles = map[string]*hcl.File{}
	}
	if _, ok := c.varFiles[name]; !ok {
		c.varFiles[name] = &hcl.File{Bytes: src}
	}
}

func (c *Config) decodeFile(f *hcl.File) hcl.Diagnostics {
	content, diags := f.Body.Content(rootSchema)
	for _, b := range content.Blocks {
		switch b.Type {
		case "runbook":
			diags = append(diags, c.decodeRunbook(b)...)
		case "variable":
			v, d := decodeVariable(b)
			diags = append(diags, d...)
			if v != nil {
				if prev, dup := c.Variables[v.Name]; dup {
					diags = append(diags, duplicate("variable", v.Name, b.DefRange, prev.DeclRange))
				} else {
					c.Variables[v.Name] = v
				}
			}
		case "locals":
			attrs, d := b.Body.JustAttributes()
			diags = append(diags, d...)
			for _, name := range sortedAttrNames(attrs) {
				a := attrs[name]
				if prev, dup := c.Locals[name]; dup {
					diags = append(diags, duplicate("local", name, a.NameRange, prev.DeclRange))
					continue
				}
				c.Locals[name] = &Local{Name: name, Expr: a.Expr, DeclRange: a.NameRange}
			}
		case "output":
			o, d := decodeOutput(b)
			diags = append(diags, d...)
			if o != nil {
				if prev, dup := c.Outputs[o.Name]; dup {
					diags = append(diags, duplicate("output", o.Name, b.DefRange, prev.DeclRange))
				} else {
					c.Outputs[o.Name] = o
				}
			}
		case "plugin":
			pr, d := decodePlugin(b)
			diags = append(diags, d...)
			if pr != nil {
				if prev, dup := c.Plugins[pr.Name]; dup {
					diags = append(diags, duplicate("plugin", pr.Name, b.DefRange, prev.DeclRange))
				} else {
					c.Plugins[pr.Name] = pr
				}
			}
		case "step":
			s, d := decodeStep(b)
			diags = append(diags, d...)
			if s != nil {
				if prev, dup := c.Steps[s.Name]; dup {
					diags = append(diags, duplicate("step", s.Name, b.DefRange, prev.DeclRange))
				} else {
					c.Steps[s.Name] = s
					c.StepOrder = append(c.StepOrder, s.Name)
				}
			}
		}
	}
	return diags
}

func sortedAttrNames(attrs hcl.Attributes) []string {
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := attrs[names[i]].NameRange, attrs[names[j]].NameRange
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return names
}

func duplicate(kind, name string, rng, prev hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s %q", kind, name),
		Detail:   fmt.Sprintf("A %s named %q was already declared at %s. Each %s needs a unique name.", kind, name, pos(prev), kind),
		Subject:  rng.Ptr(),
	}
}

func validName(kind, name string, rng hcl.Range) hcl.Diagnostics {
	if validIdentifier(name) {
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s name", kind),
		Detail:   fmt.Sprintf("%q is not a valid %s name: use letters, digits, underscores and dashes, starting with a letter.", name, kind),
		Subject:  rng.Ptr(),
	}}
}

func (c *Config) decodeRunbook(b *hcl.Block) hcl.Diagnostics {
	if c.Runbook != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Duplicate runbook block",
			Detail:   fmt.Sprintf("A runbook block was already declared at %s; a runbook has at most one.", pos(c.Runbook.DeclRange)),
			Subject:  b.DefRange.Ptr(),
		}}
	}
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "description"}, {Name: "lock"}}})
	rb := &Runbook{Name: b.Labels[0], DeclRange: b.DefRange}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, constString(a, &rb.Description)...)
	}
	if a, ok := content.Attributes["lock"]; ok {
		rb.Lock = a.Expr
	}
	c.Runbook = rb
	return diags
}

func decodeOutput(b *hcl.Block) (*Output, hcl.Diagnostics) {
	diags := validName("output", b.Labels[0], b.LabelRanges[0])
	content, d := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"},
	}})
	diags = append(diags, d...)
	o := &Output{Name: b.Labels[0], DeclRange: b.DefRange}
	if a, ok := content.Attributes["value"]; ok {
		o.Value = a.Expr
	}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, constString(a, &o.Description)...)
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		diags = append(diags, constBool(a, &o.Sensitive)...)
	}
	if o.Value == nil {
		return nil, diags
	}
	return o, diags
}

func decodePlugin(b *hcl.Block) (*PluginReq, hcl.Diagnostics) {
	diags := validName("plugin", b.Labels[0], b.LabelRanges[0])
	content, d := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "source"}, {Name: "version"}}})
	diags = append(diags, d...)
	p := &PluginReq{Name: b.Labels[0], DeclRange: b.DefRange}
	if a, ok := content.Attributes["source"]; ok {
		diags = append(diags, constString(a, &p.Source)...)
	}
	if a, ok := content.Attributes["version"]; ok {
		diags = append(diags, constString(a, &p.Version)...)
	}
	return p, diags
}

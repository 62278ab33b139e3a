package lang

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
)

type typeDefaults = typeexpr.Defaults

// AllFiles returns the runbook's files plus any variable files read, keyed
// by name, for diagnostic snippets.
func (c *Config) AllFiles() map[string]*hcl.File {
	out := make(map[string]*hcl.File, len(c.Files)+len(c.varFiles))
	for k, v := range c.Files {
		out[k] = v
	}
	for k, v := range c.varFiles {
		out[k] = v
	}
	return out
}

// WriteDiagnostics prints diagnostics with file:line:col and a source
// snippet (hcl.NewDiagnosticTextWriter). c may be nil.
func (c *Config) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, width uint, color bool) error {
	var files map[string]*hcl.File
	if c != nil {
		files = c.AllFiles()
	}
	var buf bytes.Buffer
	tw := hcl.NewDiagnosticTextWriter(&buf, files, width, color)
	for _, d := range uniqueDiags(diags) {
		buf.Reset()
		if err := tw.WriteDiagnostic(d); err != nil {
			return err
		}
		if d.Subject != nil {
			// Lead with file:line:col so editors and terminals can jump there.
			if _, err := fmt.Fprintf(w, "%s:%d:%d: ", escapeControls([]byte(d.Subject.Filename), false), d.Subject.Start.Line, d.Subject.Start.Column); err != nil {
				return err
			}
		}
		if _, err := w.Write(escapeControls([]byte(ClipText(buf.String())), color)); err != nil {
			return err
		}
	}
	return nil
}

// The colours hcl.NewDiagnosticTextWriter writes.
var diagColors = [][]byte{[]byte("\x1b[31m"), []byte("\x1b[33m"), []byte("\x1b[0m"), []byte("\x1b[1;4m")}

// escapeControls writes the control characters of b other than newlines
// and tabs as \xNN: snippets of binary input printed NUL bytes and
// terminal escape sequences to the terminal. With colors, the diagnostic
// writer's own colour sequences are kept.
func escapeControls(b []byte, colors bool) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 0x20 && c != 0x7f || c == '\n' || c == '\t' {
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		if colors && c == 0x1b {
			if j := slices.IndexFunc(diagColors, func(code []byte) bool { return bytes.HasPrefix(b[i:], code) }); j >= 0 {
				if out != nil {
					out = append(out, diagColors[j]...)
				}
				i += len(diagColors[j]) - 1
				continue
			}
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		out = fmt.Appendf(out, "\\x%02x", c)
	}
	if out == nil {
		return b
	}
	return out
}

// uniqueDiags is diags without repetitions: an error in a local, say, is
// found again by every expression that uses the local.
func uniqueDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	type key struct {
		sev             hcl.DiagnosticSeverity
		summary, detail string
		subject         hcl.Range
	}
	seen := make(map[key]bool, len(diags))
	out := diags[:0:0]
	for _, d := range diags {
		k := key{sev: d.Severity, summary: d.Summary, detail: d.Detail}
		if d.Subject != nil {
			k.subject = *d.Subject
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return out
}

// JSONPos is a position in a JSON diagnostic.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONRange is a source range in a JSON diagnostic.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONSnippet is the source around a diagnostic.
type JSONSnippet struct {
	StartLine int    `json:"start_line"`
	Code      string `json:"code"`
}

// JSONDiagnostic is the machine-readable form of one diagnostic
// (`runbook validate -json`).
type JSONDiagnostic struct {
	Severity string       `json:"severity"` // "error" | "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail,omitempty"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// JSONDiagnostics converts diagnostics for JSON output. c may be nil.
func (c *Config) JSONDiagnostics(diags hcl.Diagnostics) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	var files map[string]*hcl.File
	if c != nil {
		files = c.AllFiles()
	}
	for _, d := range uniqueDiags(diags) {
		jd := JSONDiagnostic{Severity: "error", Summary: ClipText(d.Summary), Detail: ClipText(d.Detail)}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if d.Subject != nil {
			r := *d.Subject
			jd.Range = &JSONRange{
				Filename: r.Filename,
				Start:    JSONPos{r.Start.Line, r.Start.Column, r.Start.Byte},
				End:      JSONPos{r.End.Line, r.End.Column, r.End.Byte},
			}
			if f, ok := files[r.Filename]; ok && f != nil {
				jd.Snippet = snippet(f.Bytes, r)
			}
		}
		out = append(out, jd)
	}
	return out
}

func snippet(src []byte, r hcl.Range) *JSONSnippet {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), len(src)+1)
	var b bytes.Buffer
	line := 0
	for sc.Scan() {
		line++
		if line >= r.Start.Line && line <= r.End.Line {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.Write(sc.Bytes())
		}
		if line > r.End.Line {
			break
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return &JSONSnippet{StartLine: r.Start.Line, Code: ClipText(b.String())}
}

// WriteJSONDiagnostics writes {"valid": bool, "error_count", "warning_count", "diagnostics": [...]}.
func (c *Config) WriteJSONDiagnostics(w io.Writer, diags hcl.Diagnostics) error {
	return WriteJSONReport(w, c.JSONDiagnostics(diags))
}

// WriteJSONReport writes converted diagnostics (possibly of several
// runbooks) as one JSON document.
func WriteJSONReport(w io.Writer, jd []JSONDiagnostic) error {
	if jd == nil {
		jd = []JSONDiagnostic{}
	}
	var errs, warns int
	for _, d := range jd {
		if d.Severity == "error" {
			errs++
		} else {
			warns++
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		FormatVersion string           `json:"format_version"`
		Valid         bool             `json:"valid"`
		ErrorCount    int              `json:"error_count"`
		WarningCount  int              `json:"warning_count"`
		Diagnostics   []JSONDiagnostic `json:"diagnostics"`
	}{"1.0", errs == 0, errs, warns, jd})
}

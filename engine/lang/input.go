package lang

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Runbooks come from pull requests: reading one must take bounded memory
// and never crash, whatever it holds.

// DefaultMaxFileSize is the largest runbook or variables file read, in
// bytes, unless the environment variable MaxFileSizeEnv sets another.
const DefaultMaxFileSize = 16 << 20

// MaxFileSizeEnv names the environment variable that overrides
// DefaultMaxFileSize (a number of bytes).
const MaxFileSizeEnv = "RUNBOOK_MAX_FILE_SIZE"

// MaxNesting bounds how deeply brackets, braces, parentheses, strings and
// template interpolations may nest in a file. The HCL parsers recurse per
// level, and about 50,000 levels overflow the Go stack, which kills the
// process; no runbook needs more than a few dozen.
const MaxNesting = 1000

// maxFileSize is the size limit in force.
func maxFileSize() int64 {
	if s := os.Getenv(MaxFileSizeEnv); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return DefaultMaxFileSize
}

// readSource reads a runbook or variables file (what names it in
// messages), refusing one larger than the limit.
func readSource(name, what string) ([]byte, hcl.Diagnostics) {
	b, err := readLimited(name)
	var tooLarge *fileTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: capitalize(what) + " too large",
			Detail: fmt.Sprintf("%s is larger than %d bytes, the most a %s may hold. Set the environment variable %s to a larger number of bytes to read it.",
				name, tooLarge.limit, what, MaxFileSizeEnv)}}
	case err != nil:
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read " + what, Detail: err.Error()}}
	}
	return b, nil
}

// readLimited reads a file, refusing one larger than maxFileSize without
// reading more than one byte beyond it: /dev/zero given as a file must not
// exhaust memory.
func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := maxFileSize()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, &fileTooLargeError{name: name, limit: limit}
	}
	return b, nil
}

type fileTooLargeError struct {
	name  string
	limit int64
}

func (e *fileTooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes (the limit; the environment variable %s sets another)", e.name, e.limit, MaxFileSizeEnv)
}

// Scanning modes of checkNesting: what the innermost open construct is.
const (
	nestBrace    = '{' // code inside braces
	nestBracket  = '['
	nestParen    = '('
	nestInterp   = 'i' // ${ ... } or %{ ... }: code ended by a brace
	nestQuoted   = 'q' // "..." template
	nestHeredoc  = 'h' // <<EOT ... EOT template
	nestTemplate = 't' // a whole file read as a template (templatefile)
)

type nestFrame struct {
	kind   byte
	marker []byte // of a heredoc
}

// Syntaxes checkNesting reads.
const (
	syntaxConfig   = iota // a native-syntax file or expression
	syntaxTemplate        // a template file
	syntaxJSON            // a JSON-syntax file
)

// checkInput checks src before it is parsed: its nesting, then its
// number literals.
func checkInput(name string, src []byte, syntax int) hcl.Diagnostics {
	if d := checkNesting(name, src, syntax); d.HasErrors() {
		return d
	}
	if syntax == syntaxTemplate {
		return nil
	}
	return checkNumbers(name, src)
}

// syntaxOf is the syntax of a file by its name.
func syntaxOf(name string) int {
	if strings.HasSuffix(name, ".json") {
		return syntaxJSON
	}
	return syntaxConfig
}

// checkNesting reports the first place src nests deeper than MaxNesting,
// scanning it the way the HCL lexer does (brackets in comments and strings
// do not count; interpolations in strings and heredocs do) without lexing
// it: the lexer's tokens take a hundred times the file's size in memory.
func checkNesting(name string, src []byte, syntax int) hcl.Diagnostics {
	var off int
	var badText bool
	if syntax == syntaxJSON {
		off = jsonNestingOffset(src)
	} else {
		off, badText = nestingOffset(src, syntax == syntaxTemplate, MaxNesting)
	}
	if off < 0 {
		return nil
	}
	p := posAt(name, src, off)
	if badText {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid character encoding",
			Detail:   fmt.Sprintf("The file holds a byte that is not UTF-8 text here (%s); runbooks are UTF-8 text.", strconv.QuoteToASCII(string(src[off:off+1]))),
			Subject:  &hcl.Range{Filename: name, Start: p, End: posAt(name, src, off+1)},
		}}
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Nesting too deep",
		Detail:   fmt.Sprintf("Brackets, braces, parentheses, strings and interpolations nest more than %d levels deep here; a runbook may nest at most %d.", MaxNesting, MaxNesting),
		Subject:  &hcl.Range{Filename: name, Start: p, End: posAt(name, src, off+1)},
	}}
}

// nestingOffset is the offset in src where nesting first exceeds limit
// levels, or -1; badText is set when the scan stopped at that offset on a
// byte that is not UTF-8 text instead.
func nestingOffset(src []byte, template bool, limit int) (off int, badText bool) {
	var stack []nestFrame
	if template {
		stack = append(stack, nestFrame{kind: nestTemplate})
	}
	push := func(f nestFrame) bool {
		stack = append(stack, f)
		return len(stack) > limit
	}
	top := func() byte {
		if len(stack) == 0 {
			return 0
		}
		return stack[len(stack)-1].kind
	}
	at := func(i int, s string) bool { return bytes.HasPrefix(src[i:], []byte(s)) }
	for i := 0; i < len(src); {
		switch k := top(); k {
		case nestQuoted, nestHeredoc, nestTemplate:
			switch {
			case k == nestHeredoc && (i == 0 || src[i-1] == '\n') && heredocEnd(src[i:], stack[len(stack)-1].marker) >= 0:
				i += heredocEnd(src[i:], stack[len(stack)-1].marker)
				stack = stack[:len(stack)-1]
			case k == nestQuoted && src[i] == '\\':
				i += 2
			case k == nestQuoted && src[i] == '"':
				stack = stack[:len(stack)-1]
				i++
			case at(i, "$${") || at(i, "%%{"):
				i += 3
			case at(i, "${") || at(i, "%{"):
				if push(nestFrame{kind: nestInterp}) {
					return i, false
				}
				i += 2
			default:
				n := textLen(src[i:])
				if n < 0 {
					return i, true
				}
				i += n
			}
		default: // code
			c := src[i]
			switch {
			case c == '#' || at(i, "//"):
				for i < len(src) && src[i] != '\n' {
					i++
				}
			case at(i, "/*"):
				// Unterminated, it is no comment to the lexer.
				if end := bytes.Index(src[i+2:], []byte("*/")); end >= 0 {
					i += end + 4
				} else {
					i += 2
				}
			case c == '"':
				if push(nestFrame{kind: nestQuoted}) {
					return i, false
				}
				i++
			case at(i, "<<"):
				marker, body := heredocStart(src[i:])
				if marker == nil {
					i += 2
					break
				}
				if push(nestFrame{kind: nestHeredoc, marker: marker}) {
					return i, false
				}
				i += body
			case c == '{' || c == '[' || c == '(':
				if push(nestFrame{kind: c}) {
					return i, false
				}
				i++
			case c == '}':
				// Like the lexer, a brace closes the innermost brace or
				// interpolation, and whatever is left open inside it.
				for j := len(stack) - 1; j >= 0; j-- {
					if stack[j].kind == nestBrace || stack[j].kind == nestInterp {
						stack = stack[:j]
						break
					}
				}
				i++
			case c == ']' && k == nestBracket, c == ')' && k == nestParen:
				stack = stack[:len(stack)-1]
				i++
			default:
				n := textLen(src[i:])
				if n < 0 {
					return i, true
				}
				i += n
			}
		}
	}
	return -1, false
}

// textLen is the length of the character b starts with, or -1 when b does
// not start with UTF-8. The lexer reads bytes that are not UTF-8 in ways
// the scan cannot follow (as part of a name, sometimes with a quote after
// them), and the parser refuses them anyway.
func textLen(b []byte) int {
	if b[0] < utf8.RuneSelf {
		return 1
	}
	if r, n := utf8.DecodeRune(b); r != utf8.RuneError || n > 1 {
		return n
	}
	return -1
}

// heredocStart returns the marker of the heredoc that b starts with
// ("<<EOT\n" or "<<-EOT\n") and the offset of its first line, or nil.
func heredocStart(b []byte) (marker []byte, body int) {
	j := 2
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && (isIdentByte(b[j]) || j > start && (isDigit(b[j]) || b[j] == '-')) {
		j++
	}
	if j == start {
		return nil, 0
	}
	marker = b[start:j]
	switch {
	case bytes.HasPrefix(b[j:], []byte("\n")):
		return marker, j + 1
	case bytes.HasPrefix(b[j:], []byte("\r\n")):
		return marker, j + 2
	}
	return nil, 0
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// heredocEnd is the length of the line b starts with when that line
// closes a heredoc with marker (the marker alone, spaces around it, then
// a newline), else -1.
func heredocEnd(b, marker []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 || !bytes.Equal(bytes.TrimSpace(b[:n]), marker) {
		return -1
	}
	return n
}

// jsonNestingOffset is the offset where a JSON document first nests
// deeper than MaxNesting, counting arrays and objects and, inside strings
// holding interpolations (the JSON syntax evaluates strings as
// templates), the template's own nesting; or -1.
func jsonNestingOffset(src []byte) int {
	depth := 0
	for i := 0; i < len(src); {
		switch c := src[i]; c {
		case '[', '{':
			if depth++; depth > MaxNesting {
				return i
			}
			i++
		case ']', '}':
			if depth > 0 {
				depth--
			}
			i++
		case '"':
			end := jsonStringEnd(src, i)
			if bytes.Contains(src[i:end], []byte("{")) {
				var s string
				if err := json.Unmarshal(src[i:end], &s); err == nil {
					if off, _ := nestingOffset([]byte(s), true, MaxNesting-depth); off >= 0 {
						return i
					}
				}
			}
			i = end
		default:
			i++
		}
	}
	return -1
}

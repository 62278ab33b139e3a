package lang

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Diagnostics quote the values they are about: a function error repeats
// its argument (`cannot convert "…" to number`), and the diagnostic writer
// shows each variable of the failing expression (`with var.big as "…"`).
// A 200,000-byte string was printed whole, and a line-sized secret or a
// value of a whole file is not worth a terminal of output. Diagnostic text
// is clipped: each quoted string to its first MaxQuotedLen bytes, each
// line to its first MaxLineLen bytes, followed by how much was left out.
const (
	MaxQuotedLen = 200
	MaxLineLen   = 2000
)

// ClipText clips the quoted strings and the lines of a diagnostic's text
// (see MaxQuotedLen). Text within the limits is returned unchanged.
func ClipText(s string) string {
	if len(s) <= MaxQuotedLen {
		return s
	}
	var b strings.Builder
	changed := false
	for line := range strings.SplitAfterSeq(s, "\n") {
		l := clipQuoted(line)
		body, nl := strings.CutSuffix(l, "\n")
		if len(body) > MaxLineLen {
			cut := runeStart(body, MaxLineLen)
			body = body[:cut] + fmt.Sprintf("… (%d more bytes)", len(body)-cut)
		}
		if nl {
			body += "\n"
		}
		if body != line {
			changed = true
		}
		b.WriteString(body)
	}
	if !changed {
		return s
	}
	return b.String()
}

// clipQuoted clips the Go-quoted strings ("…" with backslash escapes, on
// one line) of line longer than MaxQuotedLen.
func clipQuoted(line string) string {
	if len(line) <= MaxQuotedLen || !strings.Contains(line, `"`) {
		return line
	}
	var b strings.Builder
	i := 0
	for {
		open := strings.IndexByte(line[i:], '"')
		if open < 0 {
			b.WriteString(line[i:])
			return b.String()
		}
		open += i
		// Find the closing quote, and the last escape boundary within the
		// first MaxQuotedLen bytes of the content.
		j, cut := open+1, -1
		for j < len(line) && line[j] != '"' && line[j] != '\n' {
			if cut < 0 && j-open-1 >= MaxQuotedLen {
				cut = j
			}
			if line[j] == '\\' && j+1 < len(line) {
				j = min(len(line), j+escapeLen(line[j+1]))
				continue
			}
			_, size := utf8.DecodeRuneInString(line[j:])
			j += size
		}
		if j >= len(line) || line[j] != '"' {
			// Not a quoted string: keep the quote mark, go on after it.
			b.WriteString(line[i : open+1])
			i = open + 1
			continue
		}
		if cut < 0 {
			b.WriteString(line[i : j+1])
		} else {
			b.WriteString(line[i:cut])
			fmt.Fprintf(&b, `…" (%d more bytes)`, j-cut)
		}
		i = j + 1
	}
}

// escapeLen is the length of a Go escape sequence whose letter is c.
func escapeLen(c byte) int {
	switch {
	case c == 'x':
		return 4
	case c == 'u':
		return 6
	case c == 'U':
		return 10
	case c >= '0' && c <= '7':
		return 4
	}
	return 2
}

// runeStart moves n back to the start of the UTF-8 sequence it falls in.
func runeStart(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

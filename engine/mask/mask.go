// Package mask hides known secret values in any text, the way CI systems
// mask secrets in job logs: every value the engine learns is sensitive
// (sensitive variables, sensitive plugin outputs, anything derived from
// them) is registered, and every piece of text leaving the engine (events,
// logs, plugin stderr, errors, the journal) passes through Mask.
//
// Mask text values, never an encoded document: masking finished JSON would
// rewrite keys and timestamps that happen to hold a short secret, and turn
// a number into a bare *** (invalid JSON). Structured data is masked value
// by value before it is encoded (see event.Event.Masked).
package mask

import (
	"bytes"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
)

// Placeholder replaces every secret.
const Placeholder = "***"

// MinLen is the shortest secret that is masked: masking one- or two-letter
// values would garble every line without protecting anything.
const MinLen = 3

// Masker holds the known secrets. The zero value is ready to use and safe
// for concurrent use.
type Masker struct {
	mu sync.RWMutex
	// secrets is the set of registered values (and their escaped forms);
	// guarded by mu.
	secrets map[string]bool
	// repl replaces every secret, longest first; rebuilt by Add, guarded by
	// mu. nil when there is no secret.
	repl *strings.Replacer
	// list is the sorted secrets, longest first; guarded by mu.
	list []string
}

// New returns an empty Masker.
func New() *Masker { return &Masker{} }

// Add registers secret values. Values shorter than MinLen are ignored.
// Each value is also registered in its escaped forms (JSON, Go %q,
// percent-encoding), its multi-line forms (each line of a multi-line secret
// is a secret too) and, for a URL, its password (see variants).
func (m *Masker) Add(values ...string) {
	if m == nil {
		return
	}
	var forms []string
	for _, v := range values {
		forms = append(forms, variants(v)...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.secrets == nil {
		m.secrets = map[string]bool{}
	}
	changed := false
	for _, f := range forms {
		if len(f) < MinLen || m.secrets[f] {
			continue
		}
		m.secrets[f] = true
		changed = true
	}
	if !changed {
		return
	}
	m.list = m.list[:0]
	for s := range m.secrets {
		m.list = append(m.list, s)
	}
	sort.Slice(m.list, func(i, j int) bool {
		if len(m.list[i]) != len(m.list[j]) {
			return len(m.list[i]) > len(m.list[j])
		}
		return m.list[i] < m.list[j]
	})
	pairs := make([]string, 0, 2*len(m.list))
	for _, s := range m.list {
		pairs = append(pairs, s, Placeholder)
	}
	m.repl = strings.NewReplacer(pairs...)
}

// variants lists the forms a secret takes in the text the engine sees: the
// value itself, its JSON and Go-quoted escapes (an error quoting it with
// %q), its percent-encoded forms (a URL in an HTTP error), each line of a
// multi-line value, and the password (and user:password) of a URL.
func variants(v string) []string {
	out := []string{v}
	add := func(f string) {
		if f != v {
			out = append(out, f)
		}
	}
	if b, err := json.Marshal(v); err == nil {
		add(string(b[1 : len(b)-1]))
	}
	for _, q := range []string{strconv.Quote(v), strconv.QuoteToASCII(v)} {
		add(q[1 : len(q)-1])
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	if strings.ContainsAny(v, "\r\n") {
		for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
			if t := strings.TrimSpace(line); t != "" {
				out = append(out, t)
			}
		}
	}
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			// The password alone, as written in the URL and decoded, and
			// the whole userinfo: a client quoting the URL it dialled
			// may redact nothing else.
			_, esc, _ := strings.Cut(u.User.String(), ":")
			out = append(out, pw, esc, u.User.String())
		}
	}
	return out
}

// AddValue registers every primitive inside v that is marked with mark (or
// lies inside a marked value), as text. Numbers and bools are registered in
// their decimal form.
func (m *Masker) AddValue(v cty.Value, mark string) {
	if m == nil || v == cty.NilVal {
		return
	}
	m.Add(SecretsIn(v, mark)...)
}

// SecretsIn lists the text forms of every known primitive of v that is
// marked with mark or lies inside a marked value.
func SecretsIn(v cty.Value, mark string) []string {
	var out []string
	var walk func(v cty.Value, inside bool)
	walk = func(v cty.Value, inside bool) {
		if v.HasMark(mark) {
			inside = true
		}
		v, _ = v.Unmark()
		if !v.IsKnown() || v.IsNull() {
			return
		}
		t := v.Type()
		switch {
		case t == cty.String:
			if inside {
				out = append(out, v.AsString())
			}
		case t == cty.Number:
			if inside {
				out = append(out, v.AsBigFloat().Text('f', -1))
			}
		case t == cty.Bool:
			// true/false are never worth masking.
		case t.IsListType() || t.IsSetType() || t.IsTupleType() || t.IsMapType() || t.IsObjectType():
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				walk(e, inside)
			}
		}
	}
	if !ctyx.ContainsMarked(v) && !v.HasMark(mark) {
		return nil
	}
	walk(v, false)
	return out
}

// Mask returns s with every known secret replaced by Placeholder.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	m.mu.RLock()
	r := m.repl
	m.mu.RUnlock()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

// MaskBytes is Mask for byte slices.
func (m *Masker) MaskBytes(b []byte) []byte {
	if m == nil || !m.Contains(string(b)) {
		return b
	}
	return []byte(m.Mask(string(b)))
}

// Empty reports whether no secret is known.
func (m *Masker) Empty() bool {
	if m == nil {
		return true
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.list) == 0
}

// Contains reports whether s holds a known secret.
func (m *Masker) Contains(s string) bool {
	if m == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, x := range m.list {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// Writer returns a writer that masks what it writes to w. It buffers up to
// the end of each line so that a secret split across two writes is still
// masked; Close (or a final Flush) writes what remains.
func (m *Masker) Writer(w io.Writer) *Writer { return &Writer{m: m, w: w} }

// Writer masks line by line. It is safe for concurrent use.
type Writer struct {
	m  *Masker
	w  io.Writer
	mu sync.Mutex
	// buf holds the current unfinished line; guarded by mu.
	buf []byte
}

// maxLine bounds the buffer: a longer line without a newline is masked and
// written out in pieces.
const maxLine = 64 << 10

// Write buffers p and writes every complete line, masked.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	i := bytes.LastIndexByte(w.buf, '\n')
	if i < 0 && len(w.buf) < maxLine {
		return len(p), nil
	}
	end := i + 1
	if i < 0 {
		end = w.m.safeEnd(w.buf)
	}
	out := w.m.MaskBytes(w.buf[:end])
	_, err := w.w.Write(out)
	w.buf = append(w.buf[:0], w.buf[end:]...)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// safeEnd returns where a long line without a newline can be cut so that
// no secret straddles the cut: the last (longest secret - 1) bytes stay
// buffered, and the cut moves back before any secret that would cross it.
// A secret cut in two writes would leak both halves.
func (m *Masker) safeEnd(b []byte) int {
	if m == nil {
		return len(b)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.list) == 0 {
		return len(b)
	}
	end := len(b) - (len(m.list[0]) - 1) // list is sorted longest first
	for moved := true; moved && end > 0; {
		moved = false
		for _, s := range m.list {
			// An occurrence starting in [lo, end) crosses end.
			lo, hi := max(0, end-len(s)+1), min(len(b), end+len(s)-1)
			if j := bytes.Index(b[lo:hi], []byte(s)); j >= 0 && lo+j < end {
				end, moved = lo+j, true
			}
		}
	}
	if end <= 0 {
		// Nothing but secrets: mask it all rather than grow.
		return len(b)
	}
	return end
}

// TailLen returns how many bytes at the start of b are the end of a known
// secret whose start is not in b: the longest proper suffix of a secret
// that b begins with (0: none). Text cut in the middle of a secret keeps
// its second half, which Mask does not recognise; whoever cuts drops
// these bytes too.
func (m *Masker) TailLen(b []byte) int {
	if m == nil {
		return 0
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, s := range m.list {
		for k := min(len(s)-1, len(b)); k > n; k-- {
			if bytes.HasPrefix(b, []byte(s[len(s)-k:])) {
				n = k
				break
			}
		}
	}
	return n
}

// TailLen is the Writer's masker's TailLen.
func (w *Writer) TailLen(b []byte) int { return w.m.TailLen(b) }

// Flush writes the buffered partial line, masked.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.m.MaskBytes(w.buf))
	w.buf = w.buf[:0]
	return err
}

// Close flushes.
func (w *Writer) Close() error { return w.Flush() }

// RedactURL returns s with the password of the URL it holds replaced by
// Placeholder (`ssh://user:***@host/path`), and whether s held one. The
// rest of s is kept byte for byte; a string that is not a URL with a
// password is returned as is.
func RedactURL(s string) (string, bool) {
	if !strings.Contains(s, "@") || !strings.Contains(s, "//") {
		return s, false
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s, false
	}
	if pw, ok := u.User.Password(); !ok || pw == "" {
		return s, false
	}
	// The authority starts after "scheme://" and its userinfo ends at the
	// last '@' before the path, query or fragment.
	i := strings.Index(s, "//")
	if i < 0 {
		return s, false
	}
	start := i + 2
	end := len(s)
	if j := strings.IndexAny(s[start:], "/?#"); j >= 0 {
		end = start + j
	}
	at := strings.LastIndexByte(s[start:end], '@')
	colon := strings.IndexByte(s[start:start+max(at, 0)], ':')
	if at < 0 || colon < 0 {
		return s, false
	}
	return s[:start+colon+1] + Placeholder + s[start+at:], true
}

// URLsIn lists the strings inside v (marked or not) that are URLs with a
// password: register them (Add) to mask their passwords everywhere.
func URLsIn(v cty.Value) []string {
	var out []string
	if v == cty.NilVal {
		return nil
	}
	v, _ = v.UnmarkDeep()
	cty.Walk(v, func(_ cty.Path, x cty.Value) (bool, error) {
		if x.IsKnown() && !x.IsNull() && x.Type() == cty.String {
			if _, ok := RedactURL(x.AsString()); ok {
				out = append(out, x.AsString())
			}
		}
		return true, nil
	})
	return out
}

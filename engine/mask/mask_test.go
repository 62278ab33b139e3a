package mask

import (
	"bytes"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestMask(t *testing.T) {
	m := New()
	m.Add("s3cr3t-value", "ab", "line one\nline two", `q"uote`)
	tests := []struct{ in, want string }{
		{"password is s3cr3t-value!", "password is ***!"},
		{"short ab stays", "short ab stays"},
		{"first: line one", "first: ***"},
		{`json: "q\"uote"`, `json: "***"`},
		{"nothing here", "nothing here"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if !m.Contains("xx s3cr3t-value") || m.Contains("s3cr3t") {
		t.Errorf("Contains is wrong")
	}
}

func TestAddValue(t *testing.T) {
	m := New()
	v := cty.ObjectVal(map[string]cty.Value{
		"user":   cty.StringVal("admin"),
		"pass":   cty.StringVal("hunter22").Mark("sensitive"),
		"nested": cty.ListVal([]cty.Value{cty.StringVal("deep-secret")}).Mark("sensitive"),
		"pin":    cty.NumberIntVal(4711).Mark("sensitive"),
	})
	m.AddValue(v, "sensitive")
	got := m.Mask("admin hunter22 deep-secret 4711")
	if got != "admin *** *** ***" {
		t.Errorf("got %q", got)
	}
}

func TestWriterSplitSecret(t *testing.T) {
	m := New()
	m.Add("topsecret")
	var out bytes.Buffer
	w := m.Writer(&out)
	for _, p := range []string{"a top", "secret b\nc tops", "ecret"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if strings.Contains(out.String(), "topsecret") || out.String() != "a *** b\nc ***" {
		t.Errorf("got %q", out.String())
	}
}

func TestNilMasker(t *testing.T) {
	var m *Masker
	if m.Mask("x") != "x" || m.Contains("x") {
		t.Fatal("nil masker must pass text through")
	}
}

func TestEmpty(t *testing.T) {
	var nilM *Masker
	m := New()
	if !nilM.Empty() || !m.Empty() {
		t.Fatal("a new masker should know no secret")
	}
	m.Add("ab") // shorter than MinLen: ignored
	if !m.Empty() {
		t.Error("a value shorter than MinLen made the masker non-empty")
	}
	m.Add("s3cret")
	if m.Empty() {
		t.Error("Empty after a secret was added")
	}
}

// TestEncodedForms: a secret is masked in the forms it takes in errors and
// logs: percent-encoded in a URL (query and path), Go-quoted by %q (escapes
// change its bytes), and the password of a URL known only as a whole.
func TestEncodedForms(t *testing.T) {
	const pw = "p@ss/w rd?&é\t\"x"
	const urlSecret = "https://admin:Url%2FPw-4c1d@db.example:5984/"
	m := New()
	m.Add(pw, urlSecret)
	tests := []struct{ name, in string }{
		{"query", "GET https://h/x?token=" + url.QueryEscape(pw) + ": 401"},
		{"path", "GET https://h/" + url.PathEscape(pw) + "/doc: 404"},
		{"quoted", fmt.Sprintf("file %q not found", pw)},
		{"quoted-ascii", fmt.Sprintf("name %+q not found", pw)},
		{"url-password", "auth failed for password Url/Pw-4c1d"},
		{"url-password-escaped", "dial admin:Url%2FPw-4c1d@other:1"},
		{"url-redacted-host", `Get "https://admin:Url%2FPw-4c1d@db.example:5984/_all_dbs": EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.Mask(tt.in)
			for _, leak := range []string{"ss/w", "w rd", "w%20rd", "w+rd", "Pw-4c1d"} {
				if strings.Contains(got, leak) {
					t.Errorf("Mask(%q) = %q: %q left in clear", tt.in, got, leak)
				}
			}
			if !strings.Contains(got, Placeholder) {
				t.Errorf("Mask(%q) = %q: nothing masked", tt.in, got)
			}
		})
	}
}

// TestWriterLongLineSplitSecret: a line longer than maxLine is written out
// in pieces; a secret at the boundary of two pieces is still masked whole.
func TestWriterLongLineSplitSecret(t *testing.T) {
	const secret = "topsecret-9a7c"
	for _, at := range []int{1, 5, len(secret) - 1} {
		m := New()
		m.Add(secret)
		var out bytes.Buffer
		w := m.Writer(&out)
		w.Write([]byte(strings.Repeat("x", maxLine-at) + secret[:at]))
		w.Write([]byte(secret[at:] + " end"))
		w.Close()
		want := strings.Repeat("x", maxLine-at) + Placeholder + " end"
		if got := out.String(); got != want {
			t.Errorf("cut %d bytes into the secret: output ends %q, want %q", at, got[max(0, len(got)-30):], want[len(want)-30:])
		}
	}
}

// TestWriterLongLineChunks: however a long line is split into writes, the
// output is the line masked whole.
func TestWriterLongLineChunks(t *testing.T) {
	m := New()
	m.Add("topsecret-9a7c", "other-secret")
	line := strings.Repeat("ab topsecret-9a7c cd other-secret ", 8000)
	for _, chunk := range []int{1000, 4093, 65536} {
		var out bytes.Buffer
		w := m.Writer(&out)
		for rest := line; rest != ""; {
			n := min(chunk, len(rest))
			w.Write([]byte(rest[:n]))
			rest = rest[n:]
		}
		w.Close()
		if out.String() != m.Mask(line) {
			t.Errorf("chunks of %d: output differs from the line masked whole", chunk)
		}
	}
}

func TestTailLen(t *testing.T) {
	m := New()
	m.Add("correct horse battery staple", "s3cret")
	tests := []struct {
		in   string
		want int
	}{
		{"rse battery staple rejected", len("rse battery staple")},
		{"cret ok", len("cret")},
		{"correct horse battery staple", 0}, // whole: Mask's business
		{"nothing here", 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := m.TailLen([]byte(tt.in)); got != tt.want {
			t.Errorf("TailLen(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	if New().TailLen([]byte("x")) != 0 || (*Masker)(nil).TailLen([]byte("x")) != 0 {
		t.Error("an empty masker finds a tail")
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"ssh://user:pass@host/srv/store", "ssh://user:***@host/srv/store", true},
		{"https://u:p%40ss@h:5984/db?x=1", "https://u:***@h:5984/db?x=1", true},
		{"ssh://u:p@ss@host", "ssh://u:***@host", true},
		{"ssh://user@host/srv", "ssh://user@host/srv", false},
		{"ssh://user:@host/srv", "ssh://user:@host/srv", false},
		{"/srv/store", "/srv/store", false},
		{"cozy", "cozy", false},
		{"a:b@c", "a:b@c", false},
	} {
		got, ok := RedactURL(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RedactURL(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestURLsIn(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{
		"slaves": cty.ListVal([]cty.Value{cty.StringVal("ssh://u:pw1@a/x"), cty.StringVal("ssh://u@b/x")}),
		"db":     cty.StringVal("https://admin:pw2@c:5984/db").Mark("sensitive"),
		"n":      cty.NumberIntVal(3),
	})
	got := URLsIn(v)
	sort.Strings(got)
	want := []string{"https://admin:pw2@c:5984/db", "ssh://u:pw1@a/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("URLsIn = %q, want %q", got, want)
	}
}

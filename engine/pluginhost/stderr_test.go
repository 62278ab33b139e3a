package pluginhost

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/mask"
)

func TestStderrLines(t *testing.T) {
	long := strings.Repeat("x", 30)
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lines", []string{"a\nb\r\n\n  \nc"}, []string{"p: a", "p: b"}},
		{"split writes", []string{"he", "llo\nwor", "ld\n"}, []string{"p: hello", "p: world"}},
		{"cut", []string{long + "\n"}, []string{"p: [line cut: first 30 bytes dropped]"}},
		{"cut at a blank", []string{long + " tail\n"}, []string{"p: [line cut: first 31 bytes dropped] tail"}},
		{"cut across writes", []string{"ab", long, "c d\n", "ok\n"}, []string{"p: [line cut: first 34 bytes dropped] d", "p: ok"}},
		{"cut inside a rune", []string{strings.Repeat("é", 20) + "\t" + strings.Repeat("é", 4) + "\n"}, []string{"p: [line cut: first 41 bytes dropped] " + strings.Repeat("é", 4)}},
		// A cut inside a secret drops the rest of it: the masker would not
		// know its end for a secret.
		{"cut inside a secret", []string{"token=Canary-Secret-9f3e1d rejected\n"}, []string{"p: [line cut: first 27 bytes dropped] rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newStderrWatcher("p", &out)
			w.max = 16
			for _, s := range tt.writes {
				w.Write([]byte(s))
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// A plugin writing one endless line costs the engine a bounded buffer, and
// each write is searched for newlines once.
func TestStderrLineBounded(t *testing.T) {
	var out bytes.Buffer
	w := newStderrWatcher("p", &out)
	chunk := bytes.Repeat([]byte("y"), 4096)
	const total = 64 << 20
	for range total / len(chunk) {
		w.Write(chunk)
		if cap(w.buf) > 2*stderrLineMax+len(chunk) {
			t.Fatalf("partial line holds %d bytes", cap(w.buf))
		}
	}
	w.Write([]byte(" end\n"))
	line := strings.TrimSuffix(out.String(), "\n")
	want := fmt.Sprintf("p: [line cut: first %d bytes dropped] end", total+1)
	if line != want {
		t.Fatalf("line = %.80q… (%d bytes)", line, len(line))
	}
	if w.lastLine() != strings.TrimPrefix(line, "p: ") {
		t.Errorf("last line not kept")
	}
}

// FuzzStderrWatcher: however stderr is split into writes, the lines
// forwarded are those of the whole text, each cut to its last max bytes.
func FuzzStderrWatcher(f *testing.F) {
	f.Add([]byte("panic: boom\ngoroutine 1\r\n"), uint8(3), uint8(8))
	f.Add([]byte(strings.Repeat("é", 40)+"\nx"), uint8(7), uint8(5))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, split, max uint8) {
		maxLine := int(max%64) + utf8.UTFMax
		var out bytes.Buffer
		w := newStderrWatcher("p", &out)
		w.max = maxLine
		step := int(split) + 1
		for rest := in; len(rest) > 0; {
			n := min(step, len(rest))
			w.Write(rest[:n])
			rest = rest[n:]
			step = step*7%23 + 1
			if len(w.buf) > 2*maxLine {
				t.Fatalf("partial line holds %d bytes, max %d", len(w.buf), maxLine)
			}
		}
		var want bytes.Buffer
		lines := strings.Split(string(in), "\n")
		for _, l := range lines[:len(lines)-1] {
			cut := 0
			if len(l) > maxLine {
				cut = len(l) - maxLine
				l = l[cut:]
				_, after, found := strings.Cut(strings.ReplaceAll(l, "\t", " "), " ")
				if !found {
					after = ""
				}
				cut += len(l) - len(after)
				l = l[len(l)-len(after):]
			}
			l = strings.TrimRight(l, "\r")
			switch {
			case cut > 0 && l == "":
				l = fmt.Sprintf("[line cut: first %d bytes dropped]", cut)
			case cut > 0:
				l = fmt.Sprintf("[line cut: first %d bytes dropped] %s", cut, l)
			}
			if strings.TrimSpace(l) != "" {
				fmt.Fprintf(&want, "p: %s\n", l)
			}
		}
		if diff := cmp.Diff(want.String(), out.String()); diff != "" {
			t.Fatalf("output (-want +got):\n%s", diff)
		}
	})
}

// TestStderrCutInsideKnownSecret: a line cut inside a known secret of
// several words drops the rest of that secret, not only the word the cut
// fell in: the masker knows the secret whole, not its second half.
func TestStderrCutInsideKnownSecret(t *testing.T) {
	const secret = "correct horse battery staple"
	tests := []struct {
		name, line, want string
	}{
		// The cut (16 bytes kept of 32) falls inside "horse".
		{"in a word", "pw=correct horse battery staple ok", "p: [line cut: first 32 bytes dropped] ok"},
		{"at a blank", "pw=correct horse battery staple", "p: [line cut: first 31 bytes dropped]"},
		{"no secret", "xxxxxxxxxxxxxxxxxxxxxxxxx abc def", "p: [line cut: first 26 bytes dropped] abc def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mask.New()
			m.Add(secret)
			var out bytes.Buffer
			mw := m.Writer(&out)
			w := newStderrWatcher("p", mw)
			w.max = 16
			w.Write([]byte(tt.line + "\n"))
			mw.Flush()
			got := strings.TrimSuffix(out.String(), "\n")
			if got != tt.want {
				t.Errorf("line = %q, want %q", got, tt.want)
			}
			for _, word := range strings.Fields(secret) {
				if strings.Contains(got, word) {
					t.Errorf("%q of the secret is in %q", word, got)
				}
			}
		})
	}
}

package main

import (
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGuessPlugins(t *testing.T) {
	tests := []struct {
		name        string
		src         string
		want        []string
		pluginBlock bool
	}{
		{"steps", "step \"core.noop\" \"a\" {\n}\n  step  \"couchdb.check\" \"b\" {}\nstep \"core.exec\" \"c\" {}\n", []string{"core", "couchdb"}, false},
		{"tabs and CRLF", "\tstep\t\"whawty.sync\" \"a\" {\r\n}\r\n", []string{"whawty"}, false},
		{"no action", "step \"core\" \"a\" {}\n", nil, false},
		{"not a step", "steps \"core.noop\" \"a\" {}\nx = \"step \\\"core.noop\\\"\"\n", nil, false},
		{"plugin block", "plugin \"x\" {\n  source = \"./x\"\n}\nstep \"x.y\" \"a\" {}\n", nil, true},
		{"indented plugin block", "\n   plugin{\n", nil, true},
		{"plugin at the end", "step \"core.noop\" \"a\" {}\nplugin", nil, true},
		{"plugins is not plugin", "plugins = 1\nstep \"core.noop\" \"a\" {}\n", []string{"core"}, false},
		{"empty", "", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pb := guessPlugins([]byte(tc.src))
			if diff := cmp.Diff(tc.want, got); diff != "" || pb != tc.pluginBlock {
				t.Errorf("guessPlugins: plugin block %v (want %v), names (-want +got):\n%s", pb, tc.pluginBlock, diff)
			}
		})
	}
}

// The line scanner agrees with the regular expressions it replaced: it
// never misses a possible plugin block, and finds no plugin they do not.
func FuzzGuessPlugins(f *testing.F) {
	stepRE := regexp.MustCompile(`(?m)^\s*step\s+"([A-Za-z0-9_-]+)\.`)
	pluginRE := regexp.MustCompile(`(?m)^\s*plugin\b`)
	f.Add("step \"core.noop\" \"a\" {\n}\n")
	f.Add("plugin \"x\" {}\n")
	f.Add(" \t step \"a-b_c.d\" \"x\" {}\r\nplugins = 1\n")
	f.Fuzz(func(t *testing.T, src string) {
		names, pb := guessPlugins([]byte(src))
		if pluginRE.MatchString(src) != pb {
			t.Fatalf("plugin block: scanner %v, regexp %v", pb, !pb)
		}
		if pb {
			return
		}
		var want []string
		for _, m := range stepRE.FindAllStringSubmatch(src, -1) {
			want = append(want, m[1])
		}
		for _, n := range names {
			if !slices.Contains(want, n) {
				t.Fatalf("scanner found %q, the regexp did not (%q)", n, want)
			}
		}
	})
}

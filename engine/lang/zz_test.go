package lang

import (
	"fmt"
	"strings"
	"testing"
)

func BenchmarkZZLoad1000(b *testing.B) {
	var sb strings.Builder
	for i := 1; i <= 1000; i++ {
		fmt.Fprintf(&sb, "step \"core.noop\" \"s%d\" {\n}\n", i)
	}
	src := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		LoadSources(map[string][]byte{"main.hcl": src})
	}
}

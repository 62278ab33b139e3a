package synapse

import (
	"testing"
	"time"
)

// BenchmarkIDGen times making one MAS id (idGen.at).
func BenchmarkIDGen(b *testing.B) {
	g := newIDGen()
	t := time.Unix(1_700_000_000, 0)
	for b.Loop() {
		_ = g.at(t)
	}
}

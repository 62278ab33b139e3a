package journal

import (
	"context"
	"os"
	"sync"
	"testing"
)

// benchAppends appends b.N records to one run from 10 goroutines, as the
// steps of a run started together do, and reports the flushes (syncs or
// commits) they took.
func benchAppends(b *testing.B, s Store) {
	j, err := s.Create(&Meta{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N/10 + 1 {
				if err := j.Append(&Record{Type: RecAttemptStarted, Step: "x", Attempt: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	j.Close()
	b.ReportMetric(float64(j.(*Log).syncs), "flushes")
}

func BenchmarkAppendLocal(b *testing.B) { benchAppends(b, NewLocal(b.TempDir())) }

// BenchmarkAppendPG needs BENCH_PG: the URL of a migrated database (a
// durable server, for figures that mean something).
func BenchmarkAppendPG(b *testing.B) {
	u := os.Getenv("BENCH_PG")
	if u == "" {
		b.Skip("BENCH_PG is not set")
	}
	s, err := OpenPostgres(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchAppends(b, s)
}

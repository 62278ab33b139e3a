package journal

import (
	"context"
	"os"
	"sync"
	"testing"
)

func benchAppends(b *testing.B, s Store) {
	j, err := s.Create(&Meta{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < 10; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < b.N/10+1; i++ {
				if err := j.Append(&Record{Type: RecAttemptStarted, Step: "x", Attempt: 1}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	j.Close()
	l := j.(*Log)
	b.ReportMetric(float64(l.syncs), "flushes")
}

func BenchmarkAppendLocal(b *testing.B) { benchAppends(b, NewLocal(b.TempDir())) }
func BenchmarkAppendPG(b *testing.B) {
	u := os.Getenv("BENCH_PG")
	if u == "" {
		b.Skip()
	}
	s, err := OpenPostgres(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchAppends(b, s)
}

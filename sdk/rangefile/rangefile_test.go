package rangefile

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestFetch: ranges written out of order (the last first, in small
// writes) still give the whole file and its checksum in order; an empty
// file is one empty range; a failing range is the error returned.
func TestFetch(t *testing.T) {
	data := make([]byte, 1<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.IntN(256))
	}
	boom := errors.New("connection reset")
	for _, tc := range []struct {
		name    string
		size    int64
		seg     int64
		failAt  int // range that fails (-1: none)
		wantErr error
	}{
		{"four ranges", int64(len(data)), int64(len(data)+3) / 4, -1, nil},
		{"one range", int64(len(data)), 0, -1, nil},
		{"uneven last range", int64(len(data)), 300000, -1, nil},
		{"empty", 0, 64, -1, nil},
		{"a range fails", int64(len(data)), int64(len(data)+3) / 4, 2, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var calls atomic.Int32
			read := func(ctx context.Context, i int, start, end int64, w io.Writer) error {
				calls.Add(1)
				if i == tc.failAt {
					return boom
				}
				// Later ranges go first, so the hash waits for the start.
				time.Sleep(time.Duration(10-i) * 5 * time.Millisecond)
				for off := start; off < end; off += 4096 {
					if _, err := w.Write(data[off:min(off+4096, end)]); err != nil {
						return err
					}
				}
				return nil
			}
			sum := sha1.New()
			err = Fetch(context.Background(), f, tc.size, tc.seg, read, sum)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Fetch = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got, _ := os.ReadFile(f.Name())
			if !bytes.Equal(got, data[:tc.size]) {
				t.Errorf("file differs (%d bytes, want %d)", len(got), tc.size)
			}
			want := sha1.Sum(data[:tc.size])
			if !bytes.Equal(sum.Sum(nil), want[:]) {
				t.Error("checksum differs from the file's")
			}
			if tc.size == 0 && calls.Load() != 1 {
				t.Errorf("empty file: %d ranges read, want 1", calls.Load())
			}
		})
	}
}

package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzReadRecords feeds the record reader a journal made of records built
// from the fuzzer's strings, then bytes the fuzzer chooses put at a place
// it chooses (a torn tail, damage in the middle). The reader never panics,
// reads back every record before the damage as written, and tells a torn
// tail (a warning) from damage followed by records (a *CorruptError).
func FuzzReadRecords(f *testing.F) {
	f.Add("s1", "message", []byte("undo"), int64(1_700_000_000_000_000_000), uint16(0), []byte{})
	f.Add("a<\u2028>", "\xff\x00\"\\", []byte{}, int64(0), uint16(40), []byte(`0000abcd {"seq":9`))
	f.Add("s", "m", []byte{0}, int64(5), uint16(3), []byte("\n\x00\x00"))
	f.Fuzz(func(t *testing.T, step, msg string, data []byte, nanos int64, at uint16, junk []byte) {
		var recs []*Record
		var file []byte
		for i, typ := range []RecType{RecAttemptStarted, RecCheckpoint, RecStepFailed} {
			r := &Record{Seq: int64(i + 1), Time: time.Unix(0, nanos).UTC(), Type: typ, Step: step, Attempt: i,
				Message: msg, Checkpoint: &Blob{Data: data}, Error: &ErrorInfo{Message: msg, Kind: step}}
			var err error
			if file, err = appendLine(file, r); err != nil {
				t.Fatal(err) // every field above is encodable
			}
			recs = append(recs, roundTrip(t, r))
		}
		// Intact: every record, no warning.
		got, valid, warn, err := ReadRecords(bytes.NewReader(file))
		if err != nil || warn != "" || valid != int64(len(file)) {
			t.Fatalf("intact journal: valid %d of %d, warning %q, err %v", valid, len(file), warn, err)
		}
		if d := cmp.Diff(recs, got); d != "" {
			t.Fatalf("read back (-written +read):\n%s", d)
		}
		// Junk spliced in at a byte offset.
		pos := int(at) % (len(file) + 1)
		spoilt := append(append(append([]byte{}, file[:pos]...), junk...), file[pos:]...)
		got, valid, warn, err = ReadRecords(bytes.NewReader(spoilt))
		if valid > int64(len(spoilt)) || len(got) > len(recs)+1 {
			t.Fatalf("valid %d of %d bytes, %d records", valid, len(spoilt), len(got))
		}
		var ce *CorruptError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("error %v is no *CorruptError", err)
		}
		if ce != nil && (ce.Offset != valid || warn != "") {
			t.Fatalf("corrupt at %d, valid %d, warning %q", ce.Offset, valid, warn)
		}
		// The records read are the valid prefix's, and reading that prefix
		// again finds them all and nothing torn.
		again, v2, w2, err2 := ReadRecords(bytes.NewReader(spoilt[:valid]))
		if err2 != nil || w2 != "" || v2 != valid || len(again) != len(got) {
			t.Fatalf("valid prefix: %d records (want %d), valid %d, warning %q, err %v", len(again), len(got), v2, w2, err2)
		}
		// Records wholly before the junk read back as written.
		for i, r := range got {
			if i < len(recs) && lineEnd(file, i) <= pos {
				if d := cmp.Diff(recs[i], r); d != "" {
					t.Fatalf("record %d before the junk (-written +read):\n%s", i+1, d)
				}
			}
		}
	})
}

// lineEnd is the offset just past the i-th line of b.
func lineEnd(b []byte, i int) int {
	at := 0
	for range i + 1 {
		at += bytes.IndexByte(b[at:], '\n') + 1
	}
	return at
}

// roundTrip is r as encoding/json reads it back (invalid UTF-8 becomes
// U+FFFD, times lose their monotonic clock).
func roundTrip(t *testing.T, r *Record) *Record {
	t.Helper()
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

// Append returns only after the sync that covers its record, and Appends
// made while a sync runs share the next one (group commit).
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), journalFile)
	l, err := OpenLog(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	first := true // only the flushing goroutine (one at a time, under mu's order) uses it
	l.beforeSync = func() {
		if first {
			first = false
			<-release
		}
	}
	const n = 20
	var returned atomic.Int32
	var wg sync.WaitGroup
	appendOne := func(i int) {
		defer wg.Done()
		if err := l.Append(&Record{Type: RecAttemptStarted, Step: fmt.Sprintf("s%d", i), Attempt: 1}); err != nil {
			t.Error(err)
		}
		returned.Add(1)
	}
	wg.Add(1)
	go appendOne(0) // its sync waits for release
	for l.Seq() < 1 {
		runtime.Gosched()
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go appendOne(i)
	}
	for l.Seq() < n { // all queued behind the first sync
		runtime.Gosched()
	}
	time.Sleep(10 * time.Millisecond)
	if r := returned.Load(); r != 0 {
		t.Fatalf("%d Appends returned before their sync", r)
	}
	close(release)
	wg.Wait()
	l.mu.Lock()
	syncs := l.syncs
	l.mu.Unlock()
	if syncs != 2 {
		t.Errorf("%d syncs for %d Appends, want 2 (the first, then the rest together)", syncs, n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	recs, _, warn, err := ReadRecords(bytes.NewReader(b))
	if err != nil || warn != "" || len(recs) != n {
		t.Fatalf("%d records, warning %q, err %v", len(recs), warn, err)
	}
}

package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Each line is "<crc32c of JSON, 8 hex digits> <JSON>\n". A crash can leave
// the last line torn (no newline, or a checksum mismatch); it is dropped on
// load with a warning. A bad line followed by good ones is corruption.

// crcTable is built on first use: building it costs about half a
// millisecond, which every plugin process (the same binary) would pay at
// start for nothing.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// appendLine appends r's line (checksum, space, JSON, newline) to dst; on
// error dst is returned as it was.
func appendLine(dst []byte, r *Record) ([]byte, error) {
	j, err := json.Marshal(r)
	if err != nil {
		return dst, err
	}
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(j, crcTable()))
	dst = append(dst, j...)
	return append(dst, '\n'), nil
}

func decodeLine(line []byte) (*Record, error) {
	if len(line) < 10 || line[8] != ' ' {
		return nil, errors.New("malformed record")
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil {
		return nil, errors.New("malformed checksum")
	}
	j := line[9:]
	if crc32.Checksum(j, crcTable()) != uint32(want) {
		return nil, errors.New("checksum mismatch")
	}
	var r Record
	if err := json.Unmarshal(j, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReadRecords reads every record of r. A torn or corrupt last record is
// dropped and reported in warning; corruption before the end is a
// *CorruptError, returned with the records before it.
// validLen is the length of the valid prefix (to truncate a torn tail).
func ReadRecords(r io.Reader) (recs []*Record, validLen int64, warning string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			body := bytes.TrimRight(line, "\n")
			rec, derr := decodeLine(body)
			if !complete || derr != nil {
				rest, _ := io.ReadAll(br)
				// Is anything after it? Then it is corruption, not a torn tail.
				if len(bytes.TrimSpace(rest)) > 0 {
					why := "incomplete"
					if derr != nil {
						why = derr.Error()
					}
					return recs, off, "", &CorruptError{Offset: off,
						Reason: fmt.Sprintf("record %d is unreadable (%s) and more records follow", len(recs)+1, why)}
				}
				why := "incomplete"
				if complete {
					why = derr.Error()
				}
				return recs, off, fmt.Sprintf("dropped a torn last journal record at byte %d (%s), left by a crash", off, why), nil
			}
			recs = append(recs, rec)
			off += int64(len(line))
		}
		if rerr == io.EOF {
			return recs, off, "", nil
		}
		if rerr != nil {
			return recs, off, "", rerr
		}
	}
}

// Log appends records to a file durably. Concurrent Appends are grouped:
// one goroutine writes and syncs everything queued so far while the others
// wait for that one sync (group commit). Group commit stays because it
// pays on real work: a sync costs about 0.25 ms on an idle local disk
// (ext4, measured; 1 to 4 ms on a busy one, more on a network filesystem)
// whatever it carries, and the steps a run starts together (a for_each
// fan-out, independent branches) each journal their start before their
// plugin acts, so they share one sync instead of queueing for one each.
//
// Records are plainly appended. Writing them over zeros written ahead
// saved about 60 µs per sync (no size change to commit), which showed on a
// chain of 200 no-op steps (216 → 270 ms, median, on a busy machine) and
// not on a real runbook, whose steps take milliseconds to minutes.
type Log struct {
	w logWriter // where flushes go; used by the flushing goroutine only

	mu   sync.Mutex
	cond *sync.Cond // signalled when a flush ends; uses mu
	// The fields below are guarded by mu.
	seq        int64  // last sequence number handed out
	bufFirst   int64  // sequence number of buf's first record
	buf        []byte // encoded records waiting for the next flush
	spare      []byte // the previous flush's buffer, reused for the next one
	gen        uint64 // generation that records now in buf belong to
	flushedGen uint64 // highest generation written and synced
	flushing   bool   // a goroutine is writing/syncing right now
	err        error  // sticky write error: the journal is unusable
	closed     bool
	syncs      int // syncs done (tests)

	// beforeSync, when set (tests only), runs before each sync without mu.
	beforeSync func()
	// NoSync skips the sync (benchmarks of the engine alone; never in
	// production). Set before the first Append.
	NoSync bool
}

// OpenLog opens (creating if needed) the journal file for appending,
// continuing from sequence number seq.
// The file's end must be the end of its last record (LocalStore.Open cuts
// a torn tail first).
func OpenLog(path string, seq int64) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return newLog(&fileWriter{f: f}, seq), nil
}

// logWriter makes a flush durable: buf holds whole lines, the first with
// sequence number first. noSync skips whatever makes it durable
// (benchmarks only).
type logWriter interface {
	write(buf []byte, first int64, noSync bool) error
	close() error
}

// fileWriter appends to a journal file and syncs it.
type fileWriter struct{ f *os.File }

func (w *fileWriter) write(buf []byte, _ int64, noSync bool) error {
	_, err := w.f.Write(buf)
	if err == nil && !noSync {
		err = datasync(w.f)
	}
	return err
}

func (w *fileWriter) close() error { return w.f.Close() }

// newLog is a Log writing to w, continuing from sequence number seq.
func newLog(w logWriter, seq int64) *Log {
	l := &Log{w: w, seq: seq, gen: 1}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// Append writes r (setting Seq and Time) and returns once it is on disk:
// written and synced, with whatever other goroutines queued meanwhile.
func (l *Log) Append(r *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.queueLocked(r); err != nil {
		return err
	}
	my := l.gen
	for l.flushedGen < my {
		if l.err != nil {
			return l.err
		}
		if !l.flushing {
			l.flushLocked()
			continue
		}
		l.cond.Wait()
	}
	return l.err
}

// flushLocked writes buf and syncs, releasing mu meanwhile.
func (l *Log) flushLocked() {
	l.flushing = true
	buf, first := l.buf, l.bufFirst
	l.buf = l.spare[:0]
	l.bufFirst = l.seq + 1
	g := l.gen
	l.gen++
	l.mu.Unlock()
	if l.beforeSync != nil {
		l.beforeSync()
	}
	err := l.w.write(buf, first, l.NoSync)
	l.mu.Lock()
	l.spare = buf
	l.syncs++
	if err != nil && l.err == nil {
		l.err = fmt.Errorf("write journal: %w", err)
	}
	l.flushedGen = g
	l.flushing = false
	l.cond.Broadcast()
}

// AppendNoWait queues r for the next flush and returns at once: any later
// Append (or Close) makes it durable, in order. Use it only for records
// whose loss in a crash is harmless; never for a step's start, which must
// be durable before the step's plugin acts (use Append).
func (l *Log) AppendNoWait(r *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queueLocked(r)
}

// queueLocked numbers r and adds its line to buf.
func (l *Log) queueLocked(r *Record) error {
	if l.err != nil {
		return l.err
	}
	if l.closed {
		return errors.New("journal closed")
	}
	r.Seq = l.seq + 1
	if len(l.buf) == 0 {
		l.bufFirst = r.Seq
	}
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	var err error
	if l.buf, err = appendLine(l.buf, r); err != nil {
		return fmt.Errorf("encode journal record: %w", err)
	}
	l.seq++
	return nil
}

// Seq is the last sequence number written.
func (l *Log) Seq() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Close writes what is queued and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	for l.flushing {
		l.cond.Wait()
	}
	if len(l.buf) > 0 && l.err == nil {
		l.flushLocked()
	}
	l.closed = true
	err := l.err
	l.mu.Unlock()
	if cerr := l.w.close(); err == nil {
		err = cerr
	}
	return err
}

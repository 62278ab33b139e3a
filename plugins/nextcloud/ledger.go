package nextcloud

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ledgerLine records one thing a copy created at the target: what undo may
// delete, and what a resumed copy need not send again. Lines are appended
// after the thing exists, so a ledger never names what was not created.
type ledgerLine struct {
	// Op is "file" or "dir" (created), "intent" (a file about to be
	// uploaded where nothing was) or "drop" (an intent that created
	// nothing); see intent.go.
	Op   string `json:"op"`
	Path string `json:"path"`
	Size int64  `json:"size,omitempty"`
	// SHA1 of the content written (hex); ETag the target gave, if any.
	SHA1  string `json:"sha1,omitempty"`
	ETag  string `json:"etag,omitempty"`
	MTime int64  `json:"mtime,omitempty"` // unix seconds set at the target
	// ID is the target's id of what was created (a Cozy file or folder
	// id), MD5 its content's MD5 (base64, as Cozy keeps it).
	ID  string `json:"id,omitempty"`
	MD5 string `json:"md5,omitempty"`
}

// ledger is an append-only file of ledgerLines, kept out of the journal so
// that checkpoints and undo states stay small whatever the tree's size.
type ledger struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	n    int64
}

// ledgerPath names the ledger of a step from its idempotency key without
// the attempt ("<run>/<step>/<attempt>"), so that a retried or resumed step
// finds the ledger of its earlier attempts.
func ledgerPath(stateDir, key string) string {
	if i := strings.LastIndex(key, "/"); i > 0 {
		key = key[:i]
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(stateDir, "copy-"+hex.EncodeToString(sum[:8])+".jsonl")
}

// openLedger opens (creating) a ledger for appending.
func openLedger(path string) (*ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return &ledger{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (l *ledger) add(line ledgerLine) error {
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	_, err = l.w.Write(append(b, '\n'))
	return err
}

// flush hands the added lines to the kernel (they survive the process
// being killed), without waiting for the disk.
func (l *ledger) flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// sync makes every added line durable.
func (l *ledger) sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return l.f.Sync()
}

func (l *ledger) close() error {
	err := l.sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readLedger calls fn for each complete line of a ledger (a missing ledger
// has none; a torn last line is ignored).
func readLedger(path string, fn func(ledgerLine) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ledger %s: %w", path, err)
		}
		var l ledgerLine
		if json.Unmarshal(b, &l) != nil {
			continue
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}

package couchdb

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/runbookdev/runbook/sdk"
)

// failingFile is a dump file that fails like a full disk: writes beyond
// limit bytes return ENOSPC (the bytes before it are written), and Sync or
// Close fail when told.
type failingFile struct {
	*os.File
	limit               int64 // -1: writes never fail
	written             int64
	failSync, failClose bool
}

func (f *failingFile) Write(b []byte) (int, error) {
	if f.limit >= 0 && f.written+int64(len(b)) > f.limit {
		n, _ := f.File.Write(b[:f.limit-f.written])
		f.written += int64(n)
		return n, syscall.ENOSPC
	}
	n, err := f.File.Write(b)
	f.written += int64(n)
	return n, err
}

func (f *failingFile) Sync() error {
	if f.failSync {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (f *failingFile) Close() error {
	err := f.File.Close()
	if f.failClose {
		return syscall.EDQUOT
	}
	return err
}

// TestDumpWriteFailure checks that a dump whose file cannot be completely
// written (full disk at any byte, failed fsync, failed close) fails with a
// quota error and leaves neither the dump nor its temp file behind. Not
// parallel: it swaps createDumpFile.
func TestDumpWriteFailure(t *testing.T) {
	src, _ := servers(t)
	db := dbName(t, "dumpfail")
	seedVaried(t, client(t, src), db)
	p := sdk.Local(New())
	dump := func(path string) (*sdk.Result, error) {
		return p.Apply(tctx(t), "dump", &sdk.ApplyRequest{Inputs: obj(merge(connIn(src, ""), map[string]any{"database": db, "path": path, "workers": 1}))}, &recorder{})
	}
	// Dumps of the same data differ a little in size (the documents'
	// order varies), hence no "last byte" case.
	res, err := dump(filepath.Join(t.TempDir(), "good.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	size := outInt(t, res, "bytes")

	orig := createDumpFile
	t.Cleanup(func() { createDumpFile = orig })
	tests := []struct {
		name                string
		limit               int64
		failSync, failClose bool
	}{
		{"disk full at once", 0, false, false},
		{"disk full in the gzip header", 5, false, false},
		{"disk full midway", size / 2, false, false},
		{"disk full near the end", size * 3 / 4, false, false},
		{"fsync fails", -1, true, false},
		{"close fails", -1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			createDumpFile = func(name string) (dumpFile, error) {
				f, err := orig(name)
				if err != nil {
					return nil, err
				}
				return &failingFile{File: f.(*os.File), limit: tt.limit, failSync: tt.failSync, failClose: tt.failClose}, nil
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "cut.json.gz")
			_, err := dump(path)
			if err == nil {
				t.Fatal("dump succeeded on a failing file")
			}
			var se *sdk.Error
			if !errors.As(err, &se) || se.Kind != sdk.KindQuota {
				t.Errorf("error = %v, want a %s error", err, sdk.KindQuota)
			}
			left, _ := os.ReadDir(dir)
			for _, e := range left {
				t.Errorf("%s left behind", e.Name())
			}
		})
	}
}

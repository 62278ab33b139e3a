package nextcloud

import (
	"context"
	"io"
	"os"

	"github.com/runbookdev/runbook/sdk/rangefile"
)

// Parallel download of large files to a local target: the file is read in
// rangedStreams ranges at once (as rclone's multi-thread streams do), each
// written in place, while one goroutine hashes the part of the file
// already complete from its start, so the SHA1 is still computed in one
// pass as the data arrives (sdk/rangefile).
const (
	defaultRangedThreshold = 64 << 20
	rangedStreams          = 4
)

// fetchRanged writes src into f with parallel ranged GETs, hashing in
// order. It returns errWhole when the server did not answer with ranges
// (the caller then copies the file in one stream).
func fetchRanged(src *srcFile, f *os.File) (int64, error) {
	size := src.size
	seg := (size + rangedStreams - 1) / rangedStreams
	read := func(ctx context.Context, i int, start, end int64, w io.Writer) error {
		part := &srcFile{ctx: ctx, c: src.c, path: src.path, e: src.e, size: size, etag: src.etag,
			off: start, limit: end, sha1: src.sha1}
		defer part.close()
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		_, err := io.CopyBuffer(w, part, *bp)
		return err
	}
	var sum io.Writer = src.sha1
	if src.md5 != nil {
		sum = io.MultiWriter(src.sha1, src.md5)
	}
	if err := rangefile.Fetch(src.ctx, f, size, seg, read, sum); err != nil {
		return 0, err
	}
	src.off = size
	return size, nil
}

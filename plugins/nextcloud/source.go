package nextcloud

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/runbookdev/runbook/sdk"
)

// maxResumes is how many times one read of a file continues after the
// connection dropped (Range: bytes=N-) before the file fails.
const maxResumes = 5

// srcFile streams one source file and hashes what it reads. A dropped
// connection is resumed where it stopped with a ranged GET (If-Range: the
// ETag, so a file changed meanwhile is read again from the start instead
// of being spliced).
type srcFile struct {
	ctx  context.Context
	c    *Client
	path string // DAV path
	e    entry

	size    int64  // expected length: the listing's, or the GET's when it changed
	etag    string // the ETag of the version being read
	off     int64
	body    io.ReadCloser
	resumes int
	// changed is set when the server's version differs from the listing.
	changed bool

	sha1 hash.Hash
	md5  hash.Hash // only when the server has an MD5 and no SHA1

	// limit, when set, makes this a reader of the range [off, limit) of
	// a file (one stream of a parallel download): nothing is hashed, and
	// an answer with the whole file means it changed (errWhole).
	limit int64
}

// errWhole is a ranged read answered with the whole file: the file
// changed since the listing or the server ignores ranges.
var errWhole = errors.New("the server answered a ranged GET with the whole file")

func newSrcFile(ctx context.Context, c *Client, path string, e entry) *srcFile {
	s := &srcFile{ctx: ctx, c: c, path: path, e: e, size: e.Size, etag: e.ETag, sha1: sha1.New()}
	if e.checksum("SHA1") == "" && e.checksum("MD5") != "" {
		s.md5 = md5.New()
	}
	return s
}

// restart reads the file again from the start.
func (s *srcFile) restart() {
	s.close()
	s.off = 0
	s.sha1.Reset()
	if s.md5 != nil {
		s.md5.Reset()
	}
}

func (s *srcFile) close() {
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
}

func sameETag(a, b string) bool {
	norm := func(s string) string { return strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), `"`) }
	return norm(a) == norm(b)
}

func (s *srcFile) open() error {
	h := http.Header{}
	if s.limit > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(s.off, 10)+"-"+strconv.FormatInt(s.limit-1, 10))
		if s.etag != "" && !strings.HasPrefix(s.etag, "W/") {
			h.Set("If-Range", s.etag)
		}
	} else if s.off > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(s.off, 10)+"-")
		if s.etag != "" && !strings.HasPrefix(s.etag, "W/") {
			h.Set("If-Range", s.etag)
		}
	}
	resp, err := s.c.Do(s.ctx, Request{Method: http.MethodGet, Path: s.path, Header: h, Idempotent: true})
	if err != nil {
		return err
	}
	et := resp.Header.Get("ETag")
	if et == "" {
		et = resp.Header.Get("OC-Etag")
	}
	switch {
	case s.limit > 0 && resp.StatusCode != http.StatusPartialContent:
		resp.Body.Close()
		return errWhole
	case s.limit > 0:
	case s.off > 0 && resp.StatusCode == http.StatusPartialContent:
	case s.off > 0:
		// The server sent the whole file: it changed, or ignores ranges.
		resp.Body.Close()
		s.restart()
		return s.open()
	default:
		if et != "" && s.etag != "" && !sameETag(et, s.etag) || resp.ContentLength >= 0 && resp.ContentLength != s.size {
			s.changed = true
		}
		if et != "" {
			s.etag = et
		}
		if resp.ContentLength >= 0 {
			s.size = resp.ContentLength
		}
	}
	s.body = resp.Body
	return nil
}

func (s *srcFile) Read(p []byte) (int, error) {
	for {
		end := s.size
		if s.limit > 0 {
			end = s.limit
		}
		if s.body == nil {
			if s.off >= end && (s.off > 0 || s.limit > 0) {
				return 0, io.EOF
			}
			if err := s.open(); err != nil {
				return 0, err
			}
		}
		n, err := s.body.Read(p)
		if n > 0 {
			s.off += int64(n)
			if s.limit == 0 {
				s.sha1.Write(p[:n])
				if s.md5 != nil {
					s.md5.Write(p[:n])
				}
			}
		}
		if err == nil {
			return n, nil
		}
		if err == io.EOF && s.off >= end {
			s.close()
			return n, io.EOF
		}
		// Cut short: resume from s.off on the next read.
		s.close()
		if s.ctx.Err() != nil {
			return n, s.ctx.Err()
		}
		if s.resumes >= maxResumes {
			return n, sdk.Errorf(sdk.KindUnreachable, true, "check the network to the source server",
				"read %s: connection dropped %d times, last at byte %d: %v", s.path, s.resumes+1, s.off, err)
		}
		s.resumes++
		if n > 0 {
			return n, nil
		}
	}
}

// verify checks the length read and, when the server has a checksum of
// the version listed, that it matches the one computed while streaming.
func (s *srcFile) verify(n int64) error {
	if n != s.size {
		return fmt.Errorf("size mismatch: read %d bytes, the server announced %d", n, s.size)
	}
	if s.changed {
		return nil // the listed checksum is of an older version
	}
	if want := s.e.checksum("SHA1"); want != "" {
		if got := s.sum(); got != want {
			return fmt.Errorf("SHA1 mismatch: computed %s, the server has %s", got, want)
		}
	} else if want := s.e.checksum("MD5"); want != "" && s.md5 != nil {
		if got := hex.EncodeToString(s.md5.Sum(nil)); got != want {
			return fmt.Errorf("MD5 mismatch: computed %s, the server has %s", got, want)
		}
	}
	return nil
}

// serverChecked reports whether verify compared with a server checksum.
func (s *srcFile) serverChecked() bool {
	return !s.changed && (s.e.checksum("SHA1") != "" || (s.md5 != nil && s.e.checksum("MD5") != ""))
}

func (s *srcFile) sum() string { return hex.EncodeToString(s.sha1.Sum(nil)) }

// errSkip is a file left alone on purpose, with the reason.
type errSkip struct{ reason string }

func (e *errSkip) Error() string { return e.reason }

func skipReason(err error) (string, bool) {
	var s *errSkip
	if errors.As(err, &s) {
		return s.reason, true
	}
	return "", false
}

package whawty

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// snapshotter is implemented by transports that can read every regular
// file of a store directory (contents and full entries) in one stream, much
// faster than a request per file. ok=false means "not available here; read
// file by file instead".
type snapshotter interface {
	Snapshot(ctx context.Context, dir string) (data map[string]fileData, ok bool, err error)
}

var _ snapshotter = (*sftpFS)(nil)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// snapshotCommand streams dir's top-level entries except .tmp as a gzipped
// tar (without descending into directories).
func snapshotCommand(dir string) string {
	return "cd -- " + shellQuote(dir) + " && find . -mindepth 1 -maxdepth 1 ! -name .tmp -print0 | " +
		"LC_ALL=C tar --null --no-recursion -T - -cf - | gzip -1"
}

// Snapshot runs tar on the host over an exec channel. Hosts that allow
// only sftp (or lack find, tar or gzip) fall back to SFTP.
func (s *sftpFS) Snapshot(ctx context.Context, dir string) (map[string]fileData, bool, error) {
	if s.noExec.Load() {
		return nil, false, nil
	}
	sess, err := s.ssh.NewSession()
	if err != nil {
		return nil, false, nil
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()
	out, err := sess.StdoutPipe()
	if err != nil {
		return nil, false, nil
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	if err := sess.Start(snapshotCommand(dir)); err != nil {
		return nil, false, nil
	}
	data, perr := parseSnapshot(out)
	_, _ = io.Copy(io.Discard, out)
	werr := sess.Wait()
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if perr != nil || werr != nil {
		if strings.Contains(stderr.String(), "No such file") || strings.Contains(stderr.String(), "can't cd") {
			return nil, false, fmt.Errorf("%w: %s", fs.ErrNotExist, strings.TrimSpace(stderr.String()))
		}
		s.noExec.Store(true) // do not try again on this connection
		return nil, false, nil
	}
	return data, true, nil
}

// parseSnapshot reads a gzipped tar of top-level entries and keeps the
// regular files.
func parseSnapshot(r io.Reader) (map[string]fileData, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	data := map[string]fileData{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		name = strings.TrimSuffix(name, "/")
		if name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("unexpected tar entry %q", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			continue // listed by ReadDir already
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		e := entry{Name: name, Mode: fs.FileMode(h.Mode).Perm(), Size: h.Size, UID: h.Uid, GID: h.Gid, Regular: true}
		data[name] = fileData{Data: b, Entry: &e}
	}
}

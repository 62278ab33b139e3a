package whawty

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// snapshotter is implemented by transports that can read a whole store
// directory (entries and contents) in one stream, much faster than a
// request per file. ok=false means "not available here; list and read file
// by file instead".
type snapshotter interface {
	Snapshot(ctx context.Context, dir string) (ents []entry, data map[string]fileData, ok bool, err error)
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
func (s *sftpFS) Snapshot(ctx context.Context, dir string) ([]entry, map[string]fileData, bool, error) {
	if s.noExec.Load() {
		return nil, nil, false, nil
	}
	sess, err := s.ssh.NewSession()
	if err != nil {
		return nil, nil, false, nil
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	defer stop()
	out, err := sess.StdoutPipe()
	if err != nil {
		return nil, nil, false, nil
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	if err := sess.Start(snapshotCommand(dir)); err != nil {
		return nil, nil, false, nil
	}
	ents, data, perr := parseSnapshot(out)
	_, _ = io.Copy(io.Discard, out)
	werr := sess.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	if perr != nil || werr != nil {
		if strings.Contains(stderr.String(), "No such file") || strings.Contains(stderr.String(), "can't cd") {
			return nil, nil, false, fmt.Errorf("%w: %s", fs.ErrNotExist, strings.TrimSpace(stderr.String()))
		}
		s.noExec.Store(true) // do not try again on this connection
		return nil, nil, false, nil
	}
	// .tmp is not in the stream: stat it.
	if e, err := s.Stat(path.Join(dir, ".tmp")); err == nil {
		ents = append(ents, e)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false, err
	}
	return ents, data, true, nil
}

// parseSnapshot reads a gzipped tar of top-level entries.
func parseSnapshot(r io.Reader) ([]entry, map[string]fileData, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(zr)
	var ents []entry
	data := map[string]fileData{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ents, data, nil
		}
		if err != nil {
			return nil, nil, err
		}
		name := strings.TrimPrefix(h.Name, "./")
		name = strings.TrimSuffix(name, "/")
		if name == "" || strings.Contains(name, "/") {
			return nil, nil, fmt.Errorf("unexpected tar entry %q", h.Name)
		}
		e := entry{Name: name, Mode: fs.FileMode(h.Mode).Perm(), Size: h.Size, UID: h.Uid, GID: h.Gid}
		switch h.Typeflag {
		case tar.TypeReg:
			e.Regular = true
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, nil, err
			}
			ec := e
			data[name] = fileData{Data: b, Entry: &ec}
		case tar.TypeDir:
			e.Dir = true
			e.Mode |= fs.ModeDir
		case tar.TypeSymlink:
			e.Mode |= fs.ModeSymlink
		default:
			e.Mode |= fs.ModeIrregular
		}
		ents = append(ents, e)
	}
}

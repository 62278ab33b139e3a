package whawty

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"syscall"
)

// snapshotter is implemented by transports that can list a store directory
// and read every regular file in it (contents and full entries) in one
// stream, much faster than a request per file. ok=false means "not
// available or not worth it here; list and read file by file instead".
type snapshotter interface {
	// Snapshot returns every entry of dir (sorted by name) and, at the
	// same index, the content of each regular file with its full entry.
	// data[i].Entry is nil for other entries and for a regular file the
	// snapshot could not read. each, when not nil, is called with every
	// regular file read as it arrives.
	Snapshot(ctx context.Context, dir string, each func(name string, data []byte)) (ents []entry, data []fileData, ok bool, err error)
}

var _ snapshotter = (*sftpFS)(nil)

// snapshotMinDirSize is the directory size (as the host's stat reports it)
// from which a snapshot pays for its start-up cost: an exec channel runs the
// user's shell and its rc files. Directory sizes grow with the number of
// entries on every common file system (ext4 and xfs: about 4 KiB per 100
// names); 32 KiB is a store of roughly a thousand users.
var snapshotMinDirSize int64 = 32 << 10

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// snapshotMagic starts a snapshot stream (anything a login script prints
// before it makes the stream unusable, and the transport falls back to SFTP).
const snapshotMagic = "WHAWTYSNAP1\n"

// snapshotScript lists the current directory and streams one record per
// entry: a header of seven big-endian uint32 (name length, st_mode, uid,
// gid, size, status, data length), the name, then the content of a regular
// file. status 1 means the file could not be read. A zero name length ends
// the stream. Perl is on every Debian system (perl-base is essential); POSIX
// open/read/close cost three system calls per file after the lstat, and
// O_NOATIME (when permitted) spares an inode write per file. Names are
// sorted (byte order, as Go compares). A child process does the second half
// of the entries into memory meanwhile (two cores), and its records follow
// the parent's.
const snapshotScript = `use strict; use POSIX (); use Fcntl qw(O_RDONLY O_NONBLOCK O_NOFOLLOW S_ISREG);
binmode STDOUT; chdir($ARGV[0]) or die "cd $ARGV[0]: $!\n"; opendir(my $d, ".") or die "opendir $ARGV[0]: $!\n";
my @n = sort grep { $_ ne "." && $_ ne ".." } readdir($d); closedir($d); my $h = int(@n / 2); my $na = eval { Fcntl::O_NOATIME() } || 0;
sub rec { my $n = shift; my @s = lstat($n) or return ""; my ($st, $data) = (0, "");
 if (S_ISREG($s[2])) { my $fd = POSIX::open($n, O_RDONLY|O_NONBLOCK|O_NOFOLLOW|$na);
  if (!defined $fd && $na && $!{EPERM}) { $na = 0; $fd = POSIX::open($n, O_RDONLY|O_NONBLOCK|O_NOFOLLOW) }
  if (!defined $fd) { $st = 1 } else { my $r = POSIX::read($fd, $data, $s[7] + 1);
   if (!defined $r) { ($st, $data) = (1, "") } elsif ($r > $s[7]) { my $b; while (($r = POSIX::read($fd, $b, 65536)) && $r > 0) { $data .= $b } ($st, $data) = (1, "") unless defined $r }
   POSIX::close($fd) } }
 return pack("N7", length($n), $s[2], $s[4], $s[5], $s[7], $st, length($data)) . $n . $data }
print "` + "WHAWTYSNAP1\\n" + `";
my $pid = open(my $kid, "-|") // die "fork: $!\n";
if (!$pid) { my $o = ""; $o .= rec($_) for @n[$h .. $#n]; print $o; close(STDOUT) or die "write: $!\n"; POSIX::_exit(0) }
binmode $kid; print rec($_) for @n[0 .. $h - 1];
{ local $/ = \65536; while (defined(my $c = <$kid>)) { print $c } }
close($kid) or die "snapshot child failed\n";
print pack("N", 0); close(STDOUT) or die "write: $!\n";`

// snapshotCommand runs snapshotScript on dir.
func snapshotCommand(dir string) string {
	return "exec perl -e " + shellQuote(snapshotScript) + " -- " + shellQuote(dir)
}

// Snapshot runs snapshotScript on the host over one exec channel, when the
// directory is large enough for it to pay. Hosts that allow only sftp (or
// lack perl) fall back to SFTP.
func (s *sftpFS) Snapshot(ctx context.Context, dir string, each func(name string, data []byte)) ([]entry, []fileData, bool, error) {
	if s.noExec.Load() {
		return nil, nil, false, nil
	}
	fi, err := s.client().Lstat(dir)
	if err != nil {
		return nil, nil, false, s.wrap(err)
	}
	if !fi.IsDir() {
		return nil, nil, false, fmt.Errorf("%s: %w", dir, syscall.ENOTDIR)
	}
	if fi.Size() < snapshotMinDirSize {
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
	ents, data, perr := parseSnapshot(out, each)
	_, _ = io.Copy(io.Discard, out)
	werr := sess.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, false, err
	}
	if perr != nil || werr != nil {
		if msg := stderr.String(); strings.Contains(msg, "cd ") && strings.Contains(msg, "No such file") {
			return nil, nil, false, fmt.Errorf("%w: %s", fs.ErrNotExist, strings.TrimSpace(msg))
		}
		s.noExec.Store(true) // do not try again on this connection
		return nil, nil, false, nil
	}
	return ents, data, true, nil
}

// maxSnapshotName and maxSnapshotFile bound what a snapshot record may
// claim, so a corrupt stream cannot make the reader allocate without limit.
const (
	maxSnapshotName = 4096
	maxSnapshotFile = 64 << 20
)

// parseSnapshot reads a stream written by snapshotScript. Entries come back
// sorted by name (the script sends them so), with their data at the same
// index.
func parseSnapshot(r io.Reader, each func(name string, data []byte)) ([]entry, []fileData, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, nil, errors.New("not a snapshot stream")
	}
	var ents []entry
	var data []fileData
	var hdr [28]byte
	// Contents are carved out of large shared blocks: one allocation per
	// few thousand files instead of one per file.
	var arena []byte
	for {
		if _, err := io.ReadFull(br, hdr[:4]); err != nil {
			return nil, nil, fmt.Errorf("snapshot truncated: %w", err)
		}
		nameLen := binary.BigEndian.Uint32(hdr[:4])
		if nameLen == 0 {
			break
		}
		if _, err := io.ReadFull(br, hdr[4:]); err != nil {
			return nil, nil, fmt.Errorf("snapshot truncated: %w", err)
		}
		mode := binary.BigEndian.Uint32(hdr[4:])
		uid, gid := binary.BigEndian.Uint32(hdr[8:]), binary.BigEndian.Uint32(hdr[12:])
		size, status, dataLen := binary.BigEndian.Uint32(hdr[16:]), binary.BigEndian.Uint32(hdr[20:]), binary.BigEndian.Uint32(hdr[24:])
		if nameLen > maxSnapshotName || dataLen > maxSnapshotFile {
			return nil, nil, errors.New("snapshot record out of bounds")
		}
		if len(arena) < int(nameLen+dataLen) {
			arena = make([]byte, max(256<<10, int(nameLen+dataLen)))
		}
		buf := arena[: nameLen+dataLen : nameLen+dataLen]
		arena = arena[nameLen+dataLen:]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, nil, fmt.Errorf("snapshot truncated: %w", err)
		}
		name := string(buf[:nameLen])
		if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
			return nil, nil, fmt.Errorf("unexpected snapshot entry %q", name)
		}
		e := entryFromStat(name, mode, uid, gid, int64(size))
		ents = append(ents, e)
		var fd fileData
		if e.Regular && status == 0 {
			// Like localFS.ReadFiles: permission bits only.
			fe := entry{Name: name, Mode: fs.FileMode(mode & 0o777), Size: int64(dataLen), UID: e.UID, GID: e.GID, Regular: true}
			fd = fileData{Data: buf[nameLen:], Entry: &fe}
			if each != nil {
				each(name, fd.Data)
			}
		}
		data = append(data, fd)
	}
	if !slices.IsSortedFunc(ents, func(a, b entry) int { return strings.Compare(a.Name, b.Name) }) {
		idx := make([]int, len(ents))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(ents[a].Name, ents[b].Name) })
		se, sd := make([]entry, len(ents)), make([]fileData, len(ents))
		for i, j := range idx {
			se[i], sd[i] = ents[j], data[j]
		}
		ents, data = se, sd
	}
	for i := 1; i < len(ents); i++ {
		if ents[i].Name == ents[i-1].Name {
			return nil, nil, fmt.Errorf("snapshot lists %q twice", ents[i].Name)
		}
	}
	return ents, data, nil
}

// entryFromStat builds an entry from a raw st_mode.
func entryFromStat(name string, mode, uid, gid uint32, size int64) entry {
	m := fs.FileMode(mode & 0o777)
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFREG:
	default:
		m |= fs.ModeIrregular
	}
	return entry{Name: name, Mode: m, Size: size, UID: int(uid), GID: int(gid), Regular: m.IsRegular(), Dir: m.IsDir()}
}

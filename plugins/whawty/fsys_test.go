package whawty

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLocalReadDir checks the getdents listing against lstat for every
// kind of entry, in a directory large enough to need several getdents calls.
func TestLocalReadDir(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 5000; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("u%05d.user", i)), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Mkdir(filepath.Join(dir, ".tmp"), 0o700)
	_ = os.Symlink("u00001.user", filepath.Join(dir, "link.admin"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	got, err := localFS{}.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir) // sorted
	if err != nil {
		t.Fatal(err)
	}
	var want, have []string
	for _, de := range des {
		fi, _ := de.Info()
		want = append(want, fmt.Sprintf("%s regular=%v dir=%v type=%v", de.Name(), fi.Mode().IsRegular(), fi.IsDir(), fi.Mode().Type()))
	}
	for _, e := range got {
		have = append(have, fmt.Sprintf("%s regular=%v dir=%v type=%v", e.Name, e.Regular, e.Dir, e.Mode.Type()))
		if !e.Regular && e.Mode.Perm() == 0 {
			t.Errorf("%s: non-regular entry without its mode", e.Name)
		}
	}
	if d := cmp.Diff(want, have); d != "" {
		t.Fatalf("ReadDir (-os +ours):\n%s", d)
	}
	// Contents without stat: same bytes as with.
	names := []string{"u00000.user", "u04999.user", "gone.user"}
	withMeta, err := localFS{}.ReadFiles(t.Context(), dir, names)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := localFS{}.readAll(t.Context(), dir, names, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 2 || len(withMeta) != 2 || string(plain["u04999.user"].Data) != "x" || plain["u04999.user"].Entry != nil ||
		withMeta["u04999.user"].Entry == nil || withMeta["u04999.user"].Entry.Mode.Perm() != 0o600 {
		t.Fatalf("contents: %+v / %+v", plain, withMeta)
	}
	// A file larger than one read comes back whole.
	big := bytes.Repeat([]byte("0123456789"), 5000)
	_ = os.WriteFile(filepath.Join(dir, "big.user"), big, 0o600)
	got2, err := localFS{}.readAll(t.Context(), dir, []string{"big.user"}, false)
	if err != nil || !bytes.Equal(got2["big.user"].Data, big) {
		t.Fatalf("big file: %v, %d bytes", err, len(got2["big.user"].Data))
	}
}

// TestParseSnapshot checks the stream reader on good and broken input.
func TestParseSnapshot(t *testing.T) {
	rec := func(name string, mode uint32, status uint32, data string) []byte {
		var b bytes.Buffer
		for _, v := range []uint32{uint32(len(name)), mode, 1000, 1001, uint32(len(data)), status, uint32(len(data))} {
			_ = binary.Write(&b, binary.BigEndian, v)
		}
		b.WriteString(name)
		b.WriteString(data)
		return b.Bytes()
	}
	var good bytes.Buffer
	good.WriteString(snapshotMagic)
	good.Write(rec("b.user", syscall.S_IFREG|0o644, 0, "hash\n"))
	good.Write(rec(".tmp", syscall.S_IFDIR|0o700, 0, ""))
	good.Write(rec("a.admin", syscall.S_IFREG|0o600, 1, "")) // unreadable
	good.Write(rec("l.user", syscall.S_IFLNK|0o777, 0, ""))
	good.Write([]byte{0, 0, 0, 0})
	ents, data, err := parseSnapshot(bytes.NewReader(good.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, fmt.Sprintf("%s %v %d:%d", e.Name, e.Mode, e.UID, e.GID))
	}
	want := []string{".tmp drwx------ 1000:1001", "a.admin -rw------- 1000:1001", "b.user -rw-r--r-- 1000:1001", "l.user Lrwxrwxrwx 1000:1001"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("entries (-want +got):\n%s", d)
	}
	if len(data) != 4 || string(data[2].Data) != "hash\n" || data[2].Entry.Mode != 0o644 || data[0].Entry != nil || data[1].Entry != nil || data[3].Entry != nil {
		t.Fatalf("data = %+v", data)
	}
	full := good.Bytes()
	for _, bad := range [][]byte{
		nil,
		[]byte("Welcome to host\n" + snapshotMagic), // a login banner on stdout
		full[:len(full)-4],                          // no end record
		full[:len(snapshotMagic)+30],                // cut inside a record
		append([]byte(snapshotMagic), rec("a/b", syscall.S_IFREG|0o600, 0, "x")...),
		append([]byte(snapshotMagic), 0, 1, 0, 0), // name length out of bounds
		append(append(append([]byte(snapshotMagic), rec("x.user", syscall.S_IFREG|0o600, 0, "a")...), rec("x.user", syscall.S_IFREG|0o600, 0, "b")...), 0, 0, 0, 0),
	} {
		if _, _, err := parseSnapshot(bytes.NewReader(bad), nil); err == nil {
			t.Errorf("parseSnapshot(%q) succeeded", bad)
		}
	}
}

// TestLocalStageModes checks staged files get exactly the asked mode.
func TestLocalStageModes(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []os.FileMode{0o600, 0o644, 0o640, 0o400} {
		p, err := localFS{}.Stage(dir, []byte("data"), perm, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm || fi.Size() != 4 {
			t.Errorf("staged with %04o: mode %04o size %d", perm, fi.Mode().Perm(), fi.Size())
		}
	}
}

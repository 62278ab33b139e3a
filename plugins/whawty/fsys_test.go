package whawty

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLocalReadDir checks the listing against lstat for every kind of
// entry, in a directory large enough to need several getdents calls.
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

// TestParseSnapshot checks the tar stream reader on good and broken input.
func TestParseSnapshot(t *testing.T) {
	type rec struct {
		name string
		typ  byte
		mode int64
		data string
	}
	archive := func(recs ...rec) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, r := range recs {
			h := &tar.Header{Name: r.name, Typeflag: r.typ, Mode: r.mode, Uid: 1000, Gid: 1001, Size: int64(len(r.data)), Format: tar.FormatGNU}
			if r.typ == tar.TypeSymlink {
				h.Linkname = "elsewhere"
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			_, _ = tw.Write([]byte(r.data))
		}
		_ = tw.Close()
		return b.Bytes()
	}
	root := rec{"./", tar.TypeDir, 0o755, ""}
	good := archive(root,
		rec{"./b.user", tar.TypeReg, 0o644, "hash\n"},
		rec{"./.tmp/", tar.TypeDir, 0o700, ""},
		rec{"./a.admin", tar.TypeReg, 0o4600, ""},
		rec{"./l.user", tar.TypeSymlink, 0o777, ""})
	var seen []string
	ents, data, err := parseSnapshot(bytes.NewReader(good), func(name string, _ []byte) { seen = append(seen, name) })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, fmt.Sprintf("%s %v %d:%d", e.Name, e.Mode, e.UID, e.GID))
	}
	want := []string{".tmp drwx------ 1000:1001", "a.admin urw------- 1000:1001", "b.user -rw-r--r-- 1000:1001", "l.user Lrwxrwxrwx 1000:1001"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("entries (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"b.user", "a.admin"}, seen); d != "" {
		t.Errorf("each saw (-want +got):\n%s", d)
	}
	if len(data) != 4 || string(data[2].Data) != "hash\n" || data[2].Entry.Mode != 0o644 || data[0].Entry != nil ||
		data[1].Entry == nil || data[1].Entry.Mode != 0o600 || len(data[1].Data) != 0 || data[3].Entry != nil {
		t.Fatalf("data = %+v", data)
	}
	// The same archive gzipped reads the same.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(good)
	_ = zw.Close()
	if zents, zdata, err := parseSnapshot(bytes.NewReader(gz.Bytes()), nil); err != nil || !cmp.Equal(zents, ents) || !cmp.Equal(zdata, data) {
		t.Errorf("gzipped: %v, %+v %+v", err, zents, zdata)
	}
	for name, bad := range map[string][]byte{
		"cut gzip":          gz.Bytes()[:gz.Len()-10],
		"empty":             nil,
		"login banner":      append([]byte("Welcome to host\n"), good...),
		"no root":           archive(rec{"./x.user", tar.TypeReg, 0o600, "a"}),
		"cut inside a file": good[:512*3+2],
		"nested name":       archive(root, rec{"./d/x.user", tar.TypeReg, 0o600, "a"}),
		"listed twice":      archive(root, rec{"./x.user", tar.TypeReg, 0o600, "a"}, rec{"./x.user", tar.TypeReg, 0o600, "b"}),
		"dot-dot":           archive(root, rec{"./..", tar.TypeDir, 0o700, ""}),
	} {
		if _, _, err := parseSnapshot(bytes.NewReader(bad), nil); err == nil {
			t.Errorf("%s: parseSnapshot succeeded", name)
		}
	}
	for _, notTar := range [][]byte{nil, []byte("Welcome to host\n")} {
		if _, _, err := parseSnapshot(bytes.NewReader(notTar), nil); !errors.Is(err, errNotTar) {
			t.Errorf("parseSnapshot(%q) = %v, want errNotTar", notTar, err)
		}
	}
}

// TestSnapshotCommand runs the snapshot command with the local tar and
// checks that the listing and contents match the directory's.
func TestSnapshotCommand(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"a.user": "x\n", "root.admin": "yy\n", "odd name's.user": "z\n", "big.user": strings.Repeat("0123456789", 5000)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Link(filepath.Join(dir, "a.user"), filepath.Join(dir, "hard.user"))
	_ = os.Symlink("a.user", filepath.Join(dir, "link.user"))
	_ = os.MkdirAll(filepath.Join(dir, ".tmp", "deeper"), 0o700)
	_ = os.WriteFile(filepath.Join(dir, ".tmp", "staged"), []byte("s"), 0o600)
	out, err := exec.Command("sh", "-c", snapshotCommand(dir)).Output()
	if err != nil {
		t.Fatal(err)
	}
	ents, data, err := parseSnapshot(bytes.NewReader(out), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	snap := map[string]fileData{}
	for i, e := range ents {
		got = append(got, fmt.Sprintf("%s %v", e.Name, e.Mode))
		if data[i].Entry != nil {
			snap[e.Name] = data[i]
		}
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		fi, _ := de.Info()
		want = append(want, fmt.Sprintf("%s %v", de.Name(), fi.Mode()))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("listing (-want +got):\n%s", d)
	}
	local, err := localFS{}.ReadFiles(t.Context(), dir, sortedKeys(snap))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(local, snap); d != "" {
		t.Fatalf("contents differ (-local +snapshot):\n%s", d)
	}
	if len(snap) != 5 {
		t.Errorf("%d files read, want 5 (the hard link too)", len(snap))
	}
	// Someone else's store (a read-only sync account) is read too.
	runuser, err := exec.LookPath("runuser")
	if os.Geteuid() != 0 || err != nil {
		return
	}
	other, err := os.MkdirTemp("", "whawty-other-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(other) })
	_ = os.Chmod(other, 0o755)
	_ = os.WriteFile(filepath.Join(other, "a.user"), []byte("x\n"), 0o644)
	cmd := exec.Command(runuser, "-u", "nobody", "--", "sh", "-c", snapshotCommand(other))
	cmd.Dir = "/"
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("as nobody: %v %s", err, stderrOf(err))
	}
	if ents, _, err := parseSnapshot(bytes.NewReader(out), nil); err != nil || len(ents) != 1 {
		t.Fatalf("as nobody: %v, %+v", err, ents)
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

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

package nextcloud

import (
	"crypto/sha1"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// randomContent is n incompressible bytes.
func randomContent(n int) string {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

// checkTree fails unless dir holds exactly the files of tree (with their
// mtimes when given).
func checkTree(t *testing.T, dir string, tree map[string]string, mtimes map[string]time.Time) {
	t.Helper()
	for p, want := range tree {
		fp := filepath.Join(dir, filepath.FromSlash(p))
		got, err := os.ReadFile(fp)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		if string(got) != want {
			t.Errorf("%q: content differs (%d bytes, want %d)", p, len(got), len(want))
		}
		if mt, ok := mtimes[p]; ok {
			st, _ := os.Stat(fp)
			if !st.ModTime().Equal(mt) {
				t.Errorf("%q: mtime %s, want %s", p, st.ModTime(), mt)
			}
		}
	}
}

func copyIn(url string, extra map[string]any) cty.Value { return connIn(url, extra) }

func listOf(t *testing.T, res *sdk.Result, name string) []cty.Value {
	t.Helper()
	v := res.Outputs.GetAttr(name)
	if v.IsNull() {
		t.Fatalf("%s is null", name)
	}
	return v.AsValueSlice()
}

// TestCopyToLocal copies an awkward tree from Apache mod_dav (behind the
// Nextcloud stand-in, whose oc:checksums are Apache dead properties) to a
// local directory: contents and mtimes kept, the server's SHA1 checked, a
// file that already exists at the target skipped with a reason, and undo
// removing only what the copy created, refusing over a changed file unless
// forced. The password shows in no output, log or file.
func TestCopyToLocal(t *testing.T) {
	t.Parallel()
	ap := apache(t)
	tree := awkwardTree()
	mtimes := seed(t, ap, tree, time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC))
	setDeadProps(t, ap, "hello.txt", "11", "SHA1:"+sha1hex(tree["hello.txt"]))
	setDeadProps(t, ap, "Documents/a b.txt", "12", "MD5:"+"9b25f6d2b7b0ea0c1e0c6c3a25a57a26 SHA1:"+sha1hex("spaces"))
	nc := startNC(t, ap)

	dst := filepath.Join(t.TempDir(), "import")
	// Something of the user's own already at the target: never overwritten, never undone.
	if err := os.MkdirAll(filepath.Join(dst, "Documents"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "Documents", "a b.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	in := copyIn(nc.URL, map[string]any{"target_dir": dst, "state_dir": state, "concurrency": 4})
	p := sdktest.Local(t, New())
	res, rec := sdktest.MustApply(t, p, "copy", in)
	want := map[string]string{}
	for k, v := range tree {
		if k != "Documents/a b.txt" {
			want[k] = v
		}
	}
	checkTree(t, dst, want, mtimes)
	if got, _ := os.ReadFile(filepath.Join(dst, "Documents", "a b.txt")); string(got) != "mine" {
		t.Errorf("existing file overwritten: %q", got)
	}
	if n := outInt(t, res, "files"); n != int64(len(want)) {
		t.Errorf("files = %d, want %d", n, len(want))
	}
	if n := outInt(t, res, "verified_with_server_checksum"); n != 1 {
		t.Errorf("verified = %d, want 1 (hello.txt)", n)
	}
	sk := listOf(t, res, "skipped")
	if len(sk) != 1 || sk[0].GetAttr("path").AsString() != "Documents/a b.txt" || !strings.Contains(sk[0].GetAttr("reason").AsString(), "exists") {
		t.Errorf("skipped = %#v", res.Outputs.GetAttr("skipped"))
	}
	if e := listOf(t, res, "errors"); len(e) != 0 {
		t.Errorf("errors = %v", e)
	}
	if len(rec.ProgressEvents()) == 0 || len(rec.Checkpoints()) == 0 {
		t.Errorf("progress %d, checkpoints %d", len(rec.ProgressEvents()), len(rec.Checkpoints()))
	}
	led, _ := os.ReadFile(res.Outputs.GetAttr("ledger").AsString())
	noCanary(t, "copy", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"), string(led), string(res.UndoState))

	// Someone edits a copied file: undo leaves it and says so.
	edited := filepath.Join(dst, "Photos", "été", "プロジェクト.jpg")
	if err := os.WriteFile(edited, []byte("edited after the copy"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, Outputs: res.Outputs, UndoState: res.UndoState})
	sdktest.AssertKind(t, err, sdk.KindConflict)
	if err == nil || !strings.Contains(err.Error(), "プロジェクト.jpg") {
		t.Errorf("drift error does not name the file: %v", err)
	}
	if _, err := os.Stat(edited); err != nil {
		t.Errorf("edited file removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "hello.txt")); err == nil {
		t.Error("undo left an unchanged copied file")
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "Documents", "a b.txt")); string(got) != "mine" {
		t.Errorf("undo touched a file the copy did not create: %q", got)
	}
	// Forced: the edited file goes; the user's own file and its folder stay.
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(edited); err == nil {
		t.Error("forced undo left the edited file")
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != 1 || ents[0].Name() != "Documents" {
		t.Errorf("after undo the target holds %v, want only Documents", ents)
	}
	// Undo again: nothing left to do, no error.
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}); err != nil {
		t.Errorf("second undo: %v", err)
	}
}

// TestCopyResumeAndFaults proves, with faults injected by the Nextcloud
// stand-in in front of Apache: 423 and 429 with Retry-After are waited out
// and retried, a connection dropped in the middle of a file is resumed
// with a ranged GET, a file failing for good lands in errors[] while the
// rest is copied, and applying again (as after a crash) sends only what is
// missing. A file that changes during the copy is reported.
func TestCopyResumeAndFaults(t *testing.T) {
	t.Parallel()
	ap := apache(t)
	big := randomContent(3 << 20)
	mid := randomContent(900 << 10)
	tree := map[string]string{"big.bin": big, "mid.bin": mid, "locked.txt": "locked once", "limited.txt": "rate limited once",
		"broken.txt": "always 500", "changing.txt": "version 1", "a/b.txt": "b", "a/c.txt": "c"}
	seed(t, ap, tree, time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC))
	setDeadProps(t, ap, "big.bin", "99", "SHA1:"+sha1hex(big))
	nc := startNC(t, ap)
	var mu sync.Mutex
	seen := map[string]int{}
	var ranges []string
	nc.Mu.Lock()
	nc.DropAfter["big.bin"] = 300 << 10
	nc.DropAfter["mid.bin"] = 300 << 10
	nc.Fault = func(r *http.Request) (int, string) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/remote.php/") {
			return 0, ""
		}
		mu.Lock()
		defer mu.Unlock()
		name := filepath.Base(r.URL.Path)
		seen[name]++
		if rg := r.Header.Get("Range"); rg != "" {
			ranges = append(ranges, name+" "+rg)
		}
		switch {
		case name == "locked.txt" && seen[name] == 1:
			return http.StatusLocked, "1"
		case name == "limited.txt" && seen[name] == 1:
			return http.StatusTooManyRequests, "1"
		case name == "broken.txt":
			return http.StatusInternalServerError, ""
		case name == "changing.txt" && seen[name] == 1:
			// Written between the listing and the read.
			_ = os.WriteFile(filepath.Join(ap.Root, "changing.txt"), []byte("version 2, longer"), 0o644)
		}
		return 0, ""
	}
	nc.Mu.Unlock()

	dst := filepath.Join(t.TempDir(), "out")
	state := t.TempDir()
	// big.bin (3 MiB) is read in 4 ranges; the drop hits the first one.
	in := copyIn(nc.URL, map[string]any{"target_dir": dst, "state_dir": state, "parallel_threshold": 1 << 20})
	p := sdktest.Local(t, New())
	start := time.Now()
	res, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "run1/step.copy/1"})
	if err == nil || !strings.Contains(err.Error(), "broken.txt") {
		t.Fatalf("first copy: %v, want a failure naming broken.txt", err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("Retry-After not honoured: took %s", el)
	}
	errs := listOf(t, res, "errors")
	if len(errs) != 1 || errs[0].GetAttr("path").AsString() != "broken.txt" || !strings.Contains(errs[0].GetAttr("message").AsString(), "500") {
		t.Errorf("errors = %#v", res.Outputs.GetAttr("errors"))
	}
	if n := outInt(t, res, "files"); n != 7 {
		t.Errorf("files = %d, want 7", n)
	}
	ch := listOf(t, res, "changed")
	if len(ch) != 1 || ch[0].AsString() != "changing.txt" {
		t.Errorf("changed = %#v", res.Outputs.GetAttr("changed"))
	}
	tree["changing.txt"] = "version 2, longer"
	delete(tree, "broken.txt")
	checkTree(t, dst, tree, nil)
	mu.Lock()
	// Four ranges, then the one the drop cut, resumed where it stopped
	// (the intact content and the matching SHA1 say it was spliced right).
	var midRanges []string
	for _, r := range ranges {
		if strings.HasPrefix(r, "mid.bin") {
			midRanges = append(midRanges, r)
		}
	}
	// mid.bin, below the threshold, is one stream resumed from the cut.
	if len(midRanges) != 1 || !strings.HasSuffix(midRanges[0], "-") {
		t.Errorf("mid.bin ranged GETs: %v, want one bytes=N- resume", midRanges)
	}
	if !slices.Contains(ranges, "big.bin bytes=0-786431") || len(ranges)-len(midRanges) != 5 {
		t.Errorf("ranged GETs: %v, want 4 ranges and a resume", ranges)
	}
	for k := range seen {
		seen[k] = 0
	}
	mu.Unlock()
	if n := outInt(t, res, "verified_with_server_checksum"); n != 1 {
		t.Errorf("verified = %d (big.bin has a SHA1)", n)
	}

	// The server is fixed; apply again as a retry of the step: only the
	// missing file is read.
	nc.Mu.Lock()
	nc.Fault = func(r *http.Request) (int, string) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/remote.php/") {
			mu.Lock()
			seen[filepath.Base(r.URL.Path)]++
			mu.Unlock()
		}
		return 0, ""
	}
	nc.Mu.Unlock()
	res2, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in, IdempotencyKey: "run1/step.copy/2", Checkpoint: nil})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	gets := 0
	for _, n := range seen {
		gets += n
	}
	mu.Unlock()
	if gets != 1 || seen["broken.txt"] != 1 {
		t.Errorf("resumed copy read %v, want only broken.txt", seen)
	}
	if r, f := outInt(t, res2, "resumed"), outInt(t, res2, "files"); r != 7 || f != 8 {
		t.Errorf("resumed = %d files = %d, want 7 and 8", r, f)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "broken.txt")); string(got) != "always 500" {
		t.Errorf("broken.txt = %q", got)
	}
}

// TestCopyToWebDAV copies from Apache mod_dav to a second Apache behind the
// Nextcloud stand-in (chunked upload v2 for the big file, X-OC-Mtime, an
// existing file answered 412 and skipped) and to rclone serve webdav
// (plain WebDAV), then undoes both; a quota error (507) stops the copy as
// quota.
func TestCopyToWebDAV(t *testing.T) {
	t.Parallel()
	src := apache(t)
	big := randomContent(300 << 10)
	tree := map[string]string{"big.bin": big, "Docs/#1 100%.txt": "hash", "Docs/sub/été.txt": "été", "top.txt": "top"}
	mtimes := seed(t, src, tree, time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC))
	nsrc := startNC(t, src)

	dstAp := apache(t)
	seed(t, dstAp, map[string]string{"Import/top.txt": "already there"}, time.Now())
	ndst := startNC(t, dstAp)
	p := sdktest.Local(t, New())

	t.Run("nextcloud", func(t *testing.T) {
		in := copyIn(nsrc.URL, map[string]any{"target_url": ndst.URL, "target_login": testLogin, "target_password": canary,
			"target_path": "Import", "target_vendor": "nextcloud", "chunk_size": 100 << 10, "state_dir": t.TempDir()})
		res, rec := sdktest.MustApply(t, p, "copy", in)
		want := map[string]string{"big.bin": big, "Docs/#1 100%.txt": "hash", "Docs/sub/été.txt": "été"}
		checkTree(t, filepath.Join(dstAp.Root, "Import"), want, mtimes)
		ndst.Mu.Lock()
		chunks := ndst.Chunks
		ndst.Mu.Unlock()
		if chunks != 3 {
			t.Errorf("chunks = %d, want 3 (300 KiB in 100 KiB chunks)", chunks)
		}
		if n := outInt(t, res, "mtimes_not_kept"); n != 0 {
			t.Errorf("mtimes_not_kept = %d, want 0 (X-OC-Mtime: accepted)", n)
		}
		sk := listOf(t, res, "skipped")
		if len(sk) != 1 || sk[0].GetAttr("path").AsString() != "top.txt" {
			t.Errorf("skipped = %#v", res.Outputs.GetAttr("skipped"))
		}
		noCanary(t, "copy to nextcloud", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"))
		if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(dstAp.Root, "Import"))
		if len(ents) != 1 || ents[0].Name() != "top.txt" {
			t.Errorf("after undo Import holds %v, want only top.txt", ents)
		}
	})

	t.Run("rclone", func(t *testing.T) {
		rc := testenv.StartRcloneDAV(t, testUser, canary)
		in := copyIn(nsrc.URL, map[string]any{"target_url": rc.URL, "target_login": testUser, "target_password": canary,
			"target_user_id": testUser, "target_path": "deep/er", "state_dir": t.TempDir()})
		res, _ := sdktest.MustApply(t, p, "copy", in)
		checkTree(t, filepath.Join(rc.Root, "deep", "er"), tree, nil)
		if n := outInt(t, res, "files"); n != 4 {
			t.Errorf("files = %d", n)
		}
		checkMtimesReported(t, res, filepath.Join(rc.Root, "deep", "er"), mtimes)
		// Edited since the copy (same size): left and named, unless forced.
		edited := filepath.Join(rc.Root, "deep", "er", "top.txt")
		if err := os.WriteFile(edited, []byte("TOP"), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond) // rclone's --dir-cache-time 1s
		_, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState})
		sdktest.AssertKind(t, err, sdk.KindConflict)
		if err == nil || !strings.Contains(err.Error(), "top.txt") {
			t.Errorf("drift error does not name top.txt: %v", err)
		}
		if _, err := os.Stat(edited); err != nil {
			t.Errorf("edited file removed: %v", err)
		}
		if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(rc.Root, "deep"))
		if len(ents) != 0 {
			t.Errorf("after undo deep holds %v", ents)
		}
	})

	t.Run("apache", func(t *testing.T) {
		// Plain mod_dav ignores X-OC-Mtime and refuses PROPPATCH of
		// getlastmodified (a protected property): the output says so.
		in := copyIn(nsrc.URL, map[string]any{"target_url": dstAp.URL, "target_login": testUser, "target_password": "backend-pw",
			"target_user_id": testUser, "target_path": "Plain", "state_dir": t.TempDir()})
		res, rec := sdktest.MustApply(t, p, "copy", in)
		checkTree(t, filepath.Join(dstAp.Root, "Plain"), tree, nil)
		if n := outInt(t, res, "mtimes_not_kept"); n != 4 {
			t.Errorf("mtimes_not_kept = %d, want 4", n)
		}
		checkMtimesReported(t, res, filepath.Join(dstAp.Root, "Plain"), mtimes)
		if !strings.Contains(strings.Join(rec.Logs(), "\n"), "did not confirm keeping the mtime of 4 files") {
			t.Errorf("no warning about mtimes: %v", rec.Logs())
		}
	})

	t.Run("quota", func(t *testing.T) {
		ndst.Mu.Lock()
		ndst.Quota = 1000
		ndst.Mu.Unlock()
		in := copyIn(nsrc.URL, map[string]any{"target_url": ndst.URL, "target_login": testLogin, "target_password": canary,
			"target_path": "Quota", "target_vendor": "nextcloud", "state_dir": t.TempDir(), "concurrency": 1})
		_, _, err := sdktest.Apply(t, p, "copy", in)
		sdktest.AssertKind(t, err, sdk.KindQuota)
		if se := sdk.Classify(err); se.Retryable || !strings.Contains(se.Hint, "quota") || !strings.Contains(err.Error(), "507") {
			t.Errorf("quota error: %v (hint %q)", err, se.Hint)
		}
	})
}

// checkMtimesReported fails unless mtimes_not_kept is the number of files
// of dir whose mtime differs from the source's.
func checkMtimesReported(t *testing.T, res *sdk.Result, dir string, mtimes map[string]time.Time) {
	t.Helper()
	lost := 0
	for p, mt := range mtimes {
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(mt) {
			lost++
		}
	}
	if n := outInt(t, res, "mtimes_not_kept"); n != int64(lost) {
		t.Errorf("mtimes_not_kept = %d, but %d of %d files have another mtime than the source", n, lost, len(mtimes))
	}
}

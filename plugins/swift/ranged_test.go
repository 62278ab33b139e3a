package swift

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// Objects from parallel_threshold bytes are read in ranges: the file has
// the object's bytes, its index entry the MD5; to Swift the target has
// the same bytes; an object replaced between the ranges is refused
// (retryably) rather than mixed.
func TestCopyLargeObjectInRanges(t *testing.T) {
	t.Parallel()
	s := testenv.SharedSwift(t)
	sc := account(t, s, 0)
	cont := unique(t, "ranged")
	mkcont(t, sc, cont, nil)
	bodies := map[string][]byte{}
	for name, n := range map[string]int{"big/odd.bin": 3<<20 + 7, "big/exact.bin": 4 << 20, "small.bin": 1<<20 - 1} {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		bodies[name] = b
		put(t, sc, cont, name, b, "application/x-test", swift.Headers{"X-Object-Meta-Mtime": "1600000000"})
	}
	dir := t.TempDir()
	p := sdk.Local(New())
	in := objIn(src(s, map[string]any{"containers": []string{cont}, "target_dir": dir, "parallel_threshold": 1 << 20}))
	res, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	if n := outInt(t, res, "copied"); n != 3 {
		t.Errorf("copied %d, want 3", n)
	}
	var idx map[string]localEntry
	b, _ := os.ReadFile(filepath.Join(dir, metaDir, cont+".json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for name, want := range bodies {
		got, err := os.ReadFile(filepath.Join(dir, cont, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
		if e := idx[name]; e.MD5 != md5hex(want) || e.ContentType != "application/x-test" || e.Bytes != int64(len(want)) {
			t.Errorf("%s: index %+v", name, e)
		}
	}
	if _, err := os.ReadDir(filepath.Join(dir, cont, "big")); err != nil {
		t.Fatal(err)
	}
	// A second copy finds everything there.
	res, _, err = sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil || outInt(t, res, "skipped") != 3 {
		t.Errorf("copy again: %v", err)
	}

	// To Swift: the first MiB, then the rest, into one PUT checked
	// against the ETag.
	dc := account(t, s, 1)
	sin := objIn(dstAccount(s, src(s, map[string]any{"containers": []string{cont}, "parallel_threshold": 1 << 20})))
	if res, _, err = sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: sin}); err != nil || outInt(t, res, "copied") != 3 {
		t.Fatalf("copy to Swift: %v", err)
	}
	for name, want := range bodies {
		got, err := dc.ObjectGetBytes(tctx(t), cont, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("target %s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	tail := &tailRange{ctx: tctx(t), c: sc, cont: cont, name: "big/odd.bin", etag: md5hex([]byte("another version")), off: headRange}
	if _, err := tail.Read(make([]byte, 10)); sdk.Classify(err) == nil || sdk.Classify(err).Kind != sdk.KindConflict || !sdk.Classify(err).Retryable {
		t.Errorf("tail of a replaced object: %v", err)
	}
	tail.close()

	// The later ranges are asked with If-Match: another ETag (the object
	// replaced after the first range) is a retryable conflict.
	f, err := os.CreateTemp(t.TempDir(), "ranged")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, _, err := sc.ObjectOpen(tctx(t), cont, "big/odd.bin", false, swift.Headers{"Range": "bytes=0-1048575"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = fetchRanges(tctx(t), sc, cont, "big/odd.bin", md5hex([]byte("another version")), first, 1<<20, int64(len(bodies["big/odd.bin"])), f, md5.New())
	if e := sdk.Classify(err); e == nil || e.Kind != sdk.KindConflict || !e.Retryable {
		t.Errorf("ranges of a replaced object: %v", err)
	}
	// With the right ETag the same call hashes the whole object in order.
	first2, _, err := sc.ObjectOpen(tctx(t), cont, "big/odd.bin", false, swift.Headers{"Range": "bytes=0-1048575"})
	if err != nil {
		t.Fatal(err)
	}
	defer first2.Close()
	sum := md5.New()
	if _, err := fetchRanges(tctx(t), sc, cont, "big/odd.bin", md5hex(bodies["big/odd.bin"]), first2, 1<<20, int64(len(bodies["big/odd.bin"])), f, sum); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != md5hex(bodies["big/odd.bin"]) {
		t.Errorf("in-order MD5 %s, want %s", got, md5hex(bodies["big/odd.bin"]))
	}
}

func TestContentRangeTotal(t *testing.T) {
	for v, want := range map[string]int64{"bytes 0-99/1234": 1234, "bytes */55": 55, "": -1, "bytes 0-9": -1, "items 0-1/2": -1} {
		n, ok := contentRangeTotal(v)
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("%q: %d %v, want %d", v, n, ok, want)
		}
	}
}

// cutWriter passes the first n bytes of a body and then fails, which
// makes the reverse proxy abort the connection mid-body.
type cutWriter struct {
	http.ResponseWriter
	n int
}

func (w *cutWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		k, _ := w.ResponseWriter.Write(b[:w.n])
		w.n = 0
		return k, errors.New("cut")
	}
	w.n -= len(b)
	return w.ResponseWriter.Write(b)
}

// TestRangedCopyCutMidway: the connection of a later range (to a
// directory) or of the rest of the object (to Swift) drops mid-body, as
// when Swift is killed mid-copy: the object is copied again, whole and
// checked, and no partial file or object is left.
func TestRangedCopyCutMidway(t *testing.T) {
	s := testenv.SharedSwift(t) // not parallel: it sets retryPause
	saved := retryPause
	retryPause = 10 * time.Millisecond
	defer func() { retryPause = saved }()
	sc, dc := account(t, s, 0), account(t, s, 1)
	cont := unique(t, "cut")
	mkcont(t, sc, cont, nil)
	body := make([]byte, 3<<20+11)
	_, _ = rand.Read(body)
	put(t, sc, cont, "big.bin", body, "", nil)
	var mu sync.Mutex
	cuts, allow := 0, 1 // one cut per copy
	storage := faultProxy(t, s, func(w http.ResponseWriter, r *http.Request) bool {
		rg := r.Header.Get("Range")
		if r.Method != http.MethodGet || rg == "" || strings.HasPrefix(rg, "bytes=0-") {
			return false
		}
		mu.Lock()
		cut := allow > 0
		if cut {
			cuts++
			allow--
		}
		mu.Unlock()
		if !cut {
			return false
		}
		up, _ := url.Parse(s.AuthURL)
		up.Path = ""
		httputil.NewSingleHostReverseProxy(up).ServeHTTP(&cutWriter{ResponseWriter: w, n: 100_000}, r)
		return true
	})
	p := sdk.Local(New())
	srcIn := map[string]any{"source_storage_url": storage, "source_token": sc.AuthToken, "containers": []string{cont}, "parallel_threshold": 1 << 20}

	dir := t.TempDir()
	in := map[string]any{"target_dir": dir}
	for k, v := range srcIn {
		in[k] = v
	}
	if _, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: objIn(in)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, cont, "big.bin")); !bytes.Equal(got, body) {
		t.Errorf("local copy: %d bytes, want %d", len(got), len(body))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, cont, ".runbook-tmp-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	mu.Lock()
	if cuts != 1 {
		t.Errorf("%d ranges cut, want 1", cuts)
	}
	allow = 1
	mu.Unlock()

	if _, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: objIn(dstAccount(s, srcIn))}); err != nil {
		t.Fatal(err)
	}
	got, err := dc.ObjectGetBytes(tctx(t), cont, "big.bin")
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("Swift copy: %d bytes (%v), want %d", len(got), err, len(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if cuts != 2 {
		t.Errorf("%d ranges cut, want 2", cuts)
	}
}

// TestRangedObjectEmptiedSinceListing: an object listed large but empty
// by the time it is read (Swift answers a range of it with 416) is copied
// as it is now, to a directory and to Swift.
func TestRangedObjectEmptiedSinceListing(t *testing.T) {
	t.Parallel()
	s := testenv.SharedSwift(t)
	sc, dc := account(t, s, 0), account(t, s, 1)
	cont := unique(t, "emptied")
	mkcont(t, sc, cont, nil)
	mkcont(t, dc, cont, nil)
	put(t, sc, cont, "was-big", nil, "", nil)
	lt, err := newLocalTarget(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lt.ensureContainer(tctx(t), cont, nil); err != nil {
		t.Fatal(err)
	}
	r := &copyRun{src: sc, dst: lt, ev: sdk.NopEvents{}, rangedMin: 1 << 20}
	if aside, err := r.copyRanged(tctx(t), obj{cont: cont, name: "was-big", bytes: 8 << 20}); aside || err != nil {
		t.Fatalf("to a directory: aside=%v %v", aside, err)
	}
	if st, err := os.Stat(filepath.Join(lt.dir, cont, "was-big")); err != nil || st.Size() != 0 {
		t.Errorf("local file: %v %v", st, err)
	}
	r.dst = &swiftTarget{c: dc, listing: map[string]map[string]entry{}}
	if err := r.copyObject(tctx(t), cont, "was-big", 8<<20); err != nil {
		t.Fatalf("to Swift: %v", err)
	}
	if info, _, err := dc.Object(tctx(t), cont, "was-big"); err != nil || info.Bytes != 0 {
		t.Errorf("target object: %+v %v", info, err)
	}
}

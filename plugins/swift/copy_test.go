package swift

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ncw/swift/v2"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// checkTarget compares what the target account holds with the seed.
func checkTarget(t *testing.T, c *swift.Connection, sd seeded) {
	t.Helper()
	ctx := tctx(t)
	for name, want := range sd.plain {
		got, h, err := c.ObjectOpen(ctx, sd.main, name, true, nil)
		if err != nil {
			t.Errorf("target %s: %v", name, err)
			continue
		}
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(got)
		got.Close()
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("target %s: %d bytes, want %d", name, b.Len(), len(want))
		}
		if name != "photos/" && (h["X-Object-Meta-Mtime"] != "1600000000.5" || h["X-Object-Meta-Author"] != "Zoé") {
			t.Errorf("target %s lost its metadata: %v", name, h)
		}
		if name == "photos/" && h["Content-Type"] != "application/directory" {
			t.Errorf("marker content type %q", h["Content-Type"])
		}
		if strings.HasSuffix(name, ".jpg") && h["Content-Type"] != "image/jpeg" {
			t.Errorf("content type %q", h["Content-Type"])
		}
	}
	for name, want := range map[string][]byte{sd.dlo: sd.dloBody, sd.slo: sd.sloBody} {
		b, err := c.ObjectGetBytes(ctx, sd.main, name)
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("large object %s: %d bytes (%v), want %d", name, len(b), err, len(want))
		}
	}
	_, h, err := c.Object(ctx, sd.main, sd.dlo)
	if err != nil || h["X-Object-Manifest"] == "" {
		t.Errorf("DLO manifest not recreated: %v %v", h, err)
	}
	_, h, err = c.Object(ctx, sd.main, sd.slo)
	if err != nil || h["X-Static-Large-Object"] == "" || h["X-Object-Meta-Title"] != "holidays" {
		t.Errorf("SLO manifest not recreated: %v %v", h, err)
	}
	_, ch, err := c.Container(ctx, sd.main)
	if err != nil || ch["X-Container-Meta-Owner"] != "alice" {
		t.Errorf("container metadata: %v %v", ch, err)
	}
}

func TestCopySwiftToSwiftVerifyUndo(t *testing.T) {
	t.Parallel()
	s := testenv.SharedSwift(t)
	sc, dc := account(t, s, 0), account(t, s, 1)
	// A unicode container name; the DLO's segments live in another one.
	sd := seed(t, sc, unique(t, "été-✓"), unique(t, "segments"))
	p := sdk.Local(New())
	in := objIn(dstAccount(s, src(s, map[string]any{"containers": []string{sd.main, sd.segs}, "workers": 4})))
	res, rec, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(sd.plain) + 2 + 5) // plain, two manifests, five segments
	if got := outInt(t, res, "objects"); got != total {
		t.Errorf("objects = %d, want %d", got, total)
	}
	if got := outInt(t, res, "large_objects"); got != 2 {
		t.Errorf("large_objects = %d", got)
	}
	checkTarget(t, dc, sd)
	var objs, byts bool
	for _, e := range rec.ProgressEvents() {
		objs = objs || (e.Unit == "objects" && e.Current == total && e.Total == total)
		byts = byts || (e.Unit == "bytes" && e.Current > 0)
	}
	if !objs || !byts {
		t.Errorf("progress events: %+v", rec.ProgressEvents())
	}

	// Verify: equal, then a difference is found and named.
	vin := objIn(dstAccount(s, src(s, map[string]any{"containers": []string{sd.main, sd.segs}})))
	vres, _, err := sdktest.ApplyRequest(t, p, "verify", &sdk.ApplyRequest{Inputs: vin})
	if err != nil || !vres.Outputs.GetAttr("equal").True() {
		t.Fatalf("verify: %v %v", err, vres.Outputs.GetAttr("differences").GoString())
	}

	// Again: everything is skipped.
	res2, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil || outInt(t, res2, "copied") != 0 || outInt(t, res2, "skipped") != total {
		t.Fatalf("second copy: %v copied=%d skipped=%d", err, outInt(t, res2, "copied"), outInt(t, res2, "skipped"))
	}

	// Someone changes a copied object: verify says so, undo refuses.
	put(t, dc, sd.main, "empty", []byte("not empty any more"), "text/plain", nil)
	_, _, err = sdktest.ApplyRequest(t, p, "verify", &sdk.ApplyRequest{Inputs: vin})
	if kind(err) != sdk.KindAssertion || !strings.Contains(err.Error(), sd.main+"/empty") {
		t.Errorf("verify after a change: %v", err)
	}
	_, err = sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState})
	if kind(err) != sdk.KindConflict || !strings.Contains(err.Error(), sd.main+"/empty") {
		t.Fatalf("undo over a change: %v", err)
	}
	if _, _, err := dc.Object(tctx(t), sd.main, "docs/00/file-0.txt"); err != nil {
		t.Fatalf("the refused undo deleted something: %v", err)
	}
	// Forced, it deletes what it copied.
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState, Force: true}); err != nil {
		t.Fatal(err)
	}
	for _, cont := range []string{sd.main, sd.segs} {
		if _, _, err := dc.Container(tctx(t), cont); err != swift.ContainerNotFound {
			t.Errorf("container %s after undo: %v", cont, err)
		}
	}
}

func TestCopyToLocalDirectory(t *testing.T) {
	t.Parallel()
	s := testenv.SharedSwift(t)
	sc := account(t, s, 0)
	sd := seed(t, sc, unique(t, "local"), unique(t, "local-segs"))
	dir := t.TempDir()
	p := sdk.Local(New())
	in := objIn(src(s, map[string]any{"containers": []string{sd.main, sd.segs}, "target_dir": dir}))
	res, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range sd.plain {
		p := filepath.Join(dir, sd.main, filepath.FromSlash(strings.TrimSuffix(name, "/")))
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "photos/" {
			if !st.IsDir() {
				t.Errorf("marker is not a directory")
			}
			continue
		}
		b, _ := os.ReadFile(p)
		if !bytes.Equal(b, want) {
			t.Errorf("%s: %d bytes, want %d", name, len(b), len(want))
		}
		if want := time.Unix(1600000000, 5e8); !st.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v, want %v", name, st.ModTime(), want)
		}
	}
	for name, want := range map[string][]byte{sd.dlo: sd.dloBody, sd.slo: sd.sloBody} {
		if b, _ := os.ReadFile(filepath.Join(dir, sd.main, name)); !bytes.Equal(b, want) {
			t.Errorf("large object %s: %d bytes, want %d", name, len(b), len(want))
		}
	}
	var idx map[string]localEntry
	b, _ := os.ReadFile(filepath.Join(dir, metaDir, sd.main+".json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if e := idx["photos/été ✓/ça.jpg"]; e.ContentType != "image/jpeg" || e.Meta["author"] != "Zoé" {
		t.Errorf("index entry: %+v", e)
	}
	vin := objIn(src(s, map[string]any{"containers": []string{sd.main, sd.segs}, "target_dir": dir}))
	if vres, _, err := sdktest.ApplyRequest(t, p, "verify", &sdk.ApplyRequest{Inputs: vin}); err != nil {
		t.Fatalf("verify: %v %s", err, vres.Outputs.GetAttr("differences").GoString())
	}
	// A damaged file is found by verify and copied again.
	victim := filepath.Join(dir, sd.main, "docs", "01", "file-1.txt")
	st, _ := os.Stat(victim)
	_ = os.WriteFile(victim, bytes.Repeat([]byte("x"), int(st.Size())), 0o644)
	if _, _, err := sdktest.ApplyRequest(t, p, "verify", &sdk.ApplyRequest{Inputs: vin}); kind(err) != sdk.KindAssertion {
		t.Errorf("verify of a damaged file: %v", err)
	}
	res2, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	if err != nil || outInt(t, res2, "copied") != 1 {
		t.Fatalf("copy again: %v copied=%d", err, outInt(t, res2, "copied"))
	}
	// Undo removes the copy.
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sd.main)); !os.IsNotExist(err) {
		t.Errorf("container directory after undo: %v", err)
	}
}

func TestCopyRenewsExpiredTokenAndResumes(t *testing.T) {
	s := testenv.SharedSwift(t) // not parallel: it expires every token
	sc, dc := account(t, s, 0), account(t, s, 1)
	cont := unique(t, "tokens")
	mkcont(t, sc, cont, nil)
	for i := 0; i < 60; i++ {
		put(t, sc, cont, "o/"+itoa(int64(i)), []byte(strings.Repeat("x", i*100)), "", nil)
	}
	p := sdk.Local(New())
	in := objIn(dstAccount(s, src(s, map[string]any{"containers": []string{cont}, "workers": 3})))
	// Tokens expire after the 10th object: the copy renews them.
	afterWrite = func(n int64) {
		if n == 10 {
			if err := s.ExpireTokens(); err != nil {
				t.Error(err)
			}
		}
	}
	res, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	afterWrite = nil
	if err != nil || outInt(t, res, "copied") != 60 {
		t.Fatalf("copy with tokens expiring: %v", err)
	}
	if _, err := sdktest.Undo(t, p, "copy", &sdk.UndoRequest{Inputs: in, UndoState: res.UndoState}); err != nil {
		t.Fatal(err)
	}

	// The proxy dies after the 20th object: the step fails, retryable;
	// resumed from its checkpoint once Swift is back, it copies the rest
	// and its undo state still has the first objects.
	saved := retryPause
	retryPause = 10 * time.Millisecond
	defer func() { retryPause = saved }()
	afterWrite = func(n int64) {
		if n == 20 {
			s.StopServer("proxy")
		}
	}
	_, rec, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in})
	afterWrite = nil
	if e := sdk.Classify(err); e == nil || e.Kind != sdk.KindUnreachable || !e.Retryable {
		t.Fatalf("copy with Swift down: %v", err)
	}
	if err := s.StartServer("proxy"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	cps := rec.Checkpoints()
	res, _, err = sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: in, Checkpoint: cps[len(cps)-1]})
	if err != nil {
		t.Fatal(err)
	}
	if c, sk := outInt(t, res, "copied"), outInt(t, res, "skipped"); sk < 20 || c+sk != 60 {
		t.Errorf("resumed: copied %d, skipped %d", c, sk)
	}
	var st copyState
	_ = json.Unmarshal(res.UndoState, &st)
	if n := len(st.Objects[cont]); n != 60 {
		t.Errorf("undo state knows %d objects, want 60", n)
	}
	names, _ := dc.ObjectNamesAll(tctx(t), cont, nil)
	if len(names) != 60 {
		t.Errorf("target has %d objects", len(names))
	}
}

func TestCopyErrors(t *testing.T) {
	t.Parallel()
	s := testenv.SharedSwift(t)
	sc, dc := account(t, s, 0), account(t, s, 1)
	cont := unique(t, "errs")
	mkcont(t, sc, cont, nil)
	for i := 0; i < 5; i++ {
		put(t, sc, cont, "o"+itoa(int64(i)), bytes.Repeat([]byte("q"), 1000), "", nil)
	}
	p := sdk.Local(New())
	// A wrong key.
	bad := src(s, map[string]any{"containers": []string{cont}, "target_dir": t.TempDir()})
	bad["source_key"] = "wrong"
	_, _, err := sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: objIn(bad)})
	if kind(err) != sdk.KindAuth || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong key: %v", err)
	}
	// A token that no longer works, from another step: auth, not a loop.
	stale := map[string]any{"containers": []string{cont}, "target_dir": t.TempDir(),
		"source_storage_url": s.Accounts[0].StorageURL, "source_token": "AUTH_tkstale"}
	_, _, err = sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: objIn(stale)})
	if kind(err) != sdk.KindAuth {
		t.Errorf("stale token: %v", err)
	}
	// The target container's quota is too small: quota.
	mkcont(t, dc, cont, swift.Headers{"X-Container-Meta-Quota-Bytes": "500"})
	_, _, err = sdktest.ApplyRequest(t, p, "copy", &sdk.ApplyRequest{Inputs: objIn(dstAccount(s, src(s, map[string]any{"containers": []string{cont}})))})
	if kind(err) != sdk.KindQuota {
		t.Errorf("over quota: %v", err)
	}
	// Both a directory and an account: invalid.
	d, _ := sdktest.Validate(t, p, "copy", objIn(dstAccount(s, src(s, map[string]any{"target_dir": "/tmp/x"}))))
	if !d.HasErrors() {
		t.Error("target_dir with a target account validated")
	}
}

// TestListAndDelete is not parallel: it lowers the package's pageSize,
// which the other tests read (parallel tests wait for the serial ones).
func TestListAndDelete(t *testing.T) {
	s := testenv.SharedSwift(t)
	sc := account(t, s, 0)
	cont := unique(t, "list")
	mkcont(t, sc, cont, nil)
	for i := 0; i < 23; i++ {
		name := "a/" + string(rune('a'+i))
		if i%5 == 0 {
			name = "b/" + name
		}
		put(t, sc, cont, name, []byte(name), "", nil)
	}
	saved := pageSize
	pageSize = 7 // several pages
	defer func() { pageSize = saved }()
	p := sdk.Local(New())
	conn := map[string]any{"auth_url": s.AuthURL, "user": s.Accounts[0].User, "key": s.Accounts[0].Key}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range conn {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	res, _ := sdktest.MustApply(t, p, "list", objIn(with(map[string]any{"container": cont})))
	if outInt(t, res, "count") != 23 {
		t.Errorf("count = %d", outInt(t, res, "count"))
	}
	res, _ = sdktest.MustApply(t, p, "list", objIn(with(map[string]any{"container": cont, "delimiter": "/"})))
	var names []string
	for _, v := range res.Outputs.GetAttr("names").AsValueSlice() {
		names = append(names, v.AsString())
	}
	if diff := cmp.Diff([]string{"a/", "b/"}, names); diff != "" {
		t.Errorf("delimiter listing (-want +got):\n%s", diff)
	}
	res, _ = sdktest.MustApply(t, p, "list", objIn(with(map[string]any{"container": cont, "prefix": "b/"})))
	if outInt(t, res, "count") != 5 {
		t.Errorf("prefix count = %d", outInt(t, res, "count"))
	}
	res, _ = sdktest.MustApply(t, p, "delete", objIn(with(map[string]any{"containers": []string{cont}})))
	if outInt(t, res, "deleted") != 23 {
		t.Errorf("deleted = %d", outInt(t, res, "deleted"))
	}
	if _, _, err := sc.Container(tctx(t), cont); err != swift.ContainerNotFound {
		t.Errorf("container after delete: %v", err)
	}
	// Deleting again is fine (idempotent).
	sdktest.MustApply(t, p, "delete", objIn(with(map[string]any{"containers": []string{cont}})))
}

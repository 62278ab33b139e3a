package swift

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/sdk"
)

// TestLocalPutKeepsFileOnBadMD5: bytes that do not match the ETag are
// refused (retryable) before they replace the file already there, and no
// temporary file is left; good bytes land in a directory made on demand.
func TestLocalPutKeepsFileOnBadMD5(t *testing.T) {
	dir := t.TempDir()
	lt, err := newLocalTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := filepath.Join(dir, "c", "a", "obj")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = lt.put(ctx, putReq{cont: "c", name: "a/obj", body: strings.NewReader("new"), size: 3, etag: md5hex([]byte("other"))})
	if e := sdk.Classify(err); e == nil || e.Kind != sdk.KindConflict || !e.Retryable {
		t.Fatalf("put with a wrong ETag: %v, want a retryable conflict", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file after a refused put: %q, want %q", b, "old")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "c", "a", ".runbook-tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := lt.put(ctx, putReq{cont: "c", name: "b/d/obj", body: strings.NewReader("new"), size: 3, etag: md5hex([]byte("new"))}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c", "b", "d", "obj")); string(b) != "new" {
		t.Errorf("file in a new directory: %q, want %q", b, "new")
	}
	if !lt.has("c", "b/d/obj", md5hex([]byte("new")), 3) || lt.has("c", "a/obj", md5hex([]byte("old")), 3) {
		t.Error("has: want the written object known and the one the index never recorded unknown")
	}
}

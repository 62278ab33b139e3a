package nextcloud

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// awkwardTree has names with unicode, spaces, "#", "%" and a long path.
func awkwardTree() map[string]string {
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("é", 60) + "/" + strings.Repeat("x", 200) + ".txt"
	return map[string]string{
		"hello.txt":                 "hello world\n",
		"Documents/a b.txt":         "spaces",
		"Documents/#1 100%.md":      "hash and percent",
		"Photos/été/プロジェクト.jpg":     strings.Repeat("p", 5000),
		"Photos/empty.bin":          "",
		"deep/a/b/c/d/e/f/leaf.txt": "leaf",
		long:                        "long path",
	}
}

func readManifest(t *testing.T, path string) map[string]manifestLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]manifestLine{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l manifestLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("manifest line %q: %v", sc.Text(), err)
		}
		out[l.Path] = l
	}
	return out
}

// TestInventory walks the same awkward tree on Apache mod_dav (through the
// Nextcloud stand-in, whose oc:fileid and oc:checksums are Apache's own
// dead properties) and on rclone serve webdav (no oc: properties), at
// Depth 1 only, and checks the counts and the manifest.
func TestInventory(t *testing.T) {
	t.Parallel()
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tree := awkwardTree()
	var bytes int64
	for _, c := range tree {
		bytes += int64(len(c))
	}
	ap := apache(t)
	mtimes := seed(t, ap, tree, base)
	setDeadProps(t, ap, "Documents/#1 100%.md", "4242", "SHA1:2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 MD5:9e107d9d372bb6826bd81d3542a419d6")
	nc := startNC(t, ap)
	// PROPFINDs in flight at once, each held 30 ms: the walk's cap.
	var inFlight, peak atomic.Int32
	nc.Mu.Lock()
	nc.Fault = func(r *http.Request) (int, string) {
		if r.Method == "PROPFIND" {
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(30 * time.Millisecond)
			inFlight.Add(-1)
		}
		return 0, ""
	}
	nc.Mu.Unlock()
	rc := testenv.StartRcloneDAV(t, testUser, canary)
	seed(t, rc, tree, base)

	for _, tc := range []struct {
		name string
		url  string
		in   map[string]any
		oc   bool
	}{
		{"apache+nextcloud", nc.URL, nil, true},
		{"rclone", rc.URL, map[string]any{"login": testUser, "user_id": testUser}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			man := filepath.Join(t.TempDir(), "out", "manifest.jsonl")
			extra := map[string]any{"manifest": man, "concurrency": 3}
			for k, v := range tc.in {
				extra[k] = v
			}
			res, rec := sdktest.MustApply(t, sdktest.Local(t, New()), "inventory", connIn(tc.url, extra))
			if got := outInt(t, res, "files"); got != int64(len(tree)) {
				t.Errorf("files = %d, want %d", got, len(tree))
			}
			if got := outInt(t, res, "bytes"); got != bytes {
				t.Errorf("bytes = %d, want %d", got, bytes)
			}
			// Documents, Photos, Photos/été, deep + 6 levels, the long path's 2.
			if got := outInt(t, res, "folders"); got != 12 {
				t.Errorf("folders = %d, want 12", got)
			}
			m := readManifest(t, man)
			for p, c := range tree {
				l, ok := m[p]
				if !ok {
					t.Errorf("manifest lacks %q", p)
					continue
				}
				if l.Size != int64(len(c)) || l.ETag == "" || l.MTime == "" {
					t.Errorf("%q: %+v", p, l)
				}
			}
			for p, mt := range mtimes {
				if got := m[p].MTime; got != mt.Format(time.RFC3339) {
					t.Errorf("%q: mtime = %s, want %s", p, got, mt.Format(time.RFC3339))
				}
			}
			hp := m["Documents/#1 100%.md"]
			if tc.oc {
				want := manifestLine{Path: "Documents/#1 100%.md", Size: 16, ETag: hp.ETag, FileID: "4242", MTime: hp.MTime,
					Checksums: "SHA1:2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 MD5:9e107d9d372bb6826bd81d3542a419d6"}
				if diff := cmp.Diff(want, hp); diff != "" {
					t.Errorf("oc: properties (-want +got):\n%s", diff)
				}
				if got := outInt(t, res, "with_checksums"); got != 1 {
					t.Errorf("with_checksums = %d", got)
				}
				nc.Mu.Lock()
				depths := nc.Depths
				nc.Mu.Unlock()
				if depths["infinity"] != 0 || depths[""] != 0 || depths["1"] < 12 {
					t.Errorf("PROPFIND depths = %v, want only 1", depths)
				}
				if p := peak.Load(); p < 2 || p > 3 {
					t.Errorf("%d PROPFINDs at once, want 2 or 3 (concurrency 3)", p)
				}
			}
			noCanary(t, "inventory", outputsJSON(res.Outputs), strings.Join(rec.Logs(), "\n"))
			b, _ := os.ReadFile(man)
			noCanary(t, "manifest", string(b))
		})
	}
}

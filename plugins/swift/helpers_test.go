package swift

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

func TestMain(m *testing.M) {
	if benchChild() {
		os.Exit(0)
	}
	code := m.Run()
	testenv.StopSharedSwift()
	os.Exit(code)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// account returns an authenticated connection to account i of s.
func account(t *testing.T, s *testenv.Swift, i int) *swift.Connection {
	t.Helper()
	c := &swift.Connection{UserName: s.Accounts[i].User, ApiKey: s.Accounts[i].Key, AuthUrl: s.AuthURL, AuthVersion: 1}
	if err := c.Authenticate(tctx(t)); err != nil {
		t.Fatal(err)
	}
	return c
}

var seq atomic.Int64

// unique makes a container name unique to the test.
func unique(t *testing.T, base string) string {
	return fmt.Sprintf("%s-%s-%d", base, strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_"), seq.Add(1))
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func put(t *testing.T, c *swift.Connection, cont, name string, body []byte, ct string, h swift.Headers) {
	t.Helper()
	if _, err := c.ObjectPut(tctx(t), cont, name, strings.NewReader(string(body)), true, md5hex(body), ct, h); err != nil {
		t.Fatalf("put %s/%s: %v", cont, name, err)
	}
}

func mkcont(t *testing.T, c *swift.Connection, cont string, h swift.Headers) {
	t.Helper()
	if err := c.ContainerCreate(tctx(t), cont, h); err != nil {
		t.Fatalf("create %s: %v", cont, err)
	}
}

// seeded describes what seed wrote.
type seeded struct {
	main, segs string // containers
	plain      map[string][]byte
	dlo, slo   string // names in main
	dloBody    []byte
	sloBody    []byte
}

// seed fills a container with what a copy must get right: metadata and
// content types, "/" in names, a 0-byte object, a pseudo-directory
// marker, a DLO whose segments are in another container, and an SLO.
func seed(t *testing.T, c *swift.Connection, main, segs string) seeded {
	t.Helper()
	ctx := tctx(t)
	mkcont(t, c, main, swift.Headers{"X-Container-Meta-Owner": "alice"})
	mkcont(t, c, segs, nil)
	sd := seeded{main: main, segs: segs, plain: map[string][]byte{}}
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("docs/%02d/file-%d.txt", i%4, i)
		sd.plain[name] = []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), i*37+1))
	}
	sd.plain["empty"] = nil
	sd.plain["photos/été ✓/ça.jpg"] = []byte("\xff\xd8jpeg bytes")
	for name, b := range sd.plain {
		ct := "text/plain"
		if strings.HasSuffix(name, ".jpg") {
			ct = "image/jpeg"
		}
		put(t, c, main, name, b, ct, swift.Headers{"X-Object-Meta-Mtime": "1600000000.5", "X-Object-Meta-Author": "Zoé"})
	}
	put(t, c, main, "photos/", nil, "application/directory", nil)
	sd.plain["photos/"] = nil
	// DLO: three segments in the other container.
	var dlo []byte
	for i := 0; i < 3; i++ {
		b := []byte(strings.Repeat(fmt.Sprintf("dlo segment %d;", i), 1000+i))
		dlo = append(dlo, b...)
		put(t, c, segs, fmt.Sprintf("big.iso/%08d", i), b, "application/octet-stream", nil)
	}
	sd.dlo, sd.dloBody = "big.iso", dlo
	if _, err := c.ObjectPut(ctx, main, "big.iso", strings.NewReader(""), false, "", "application/x-iso9660-image",
		swift.Headers{"X-Object-Manifest": url.PathEscape(segs) + "/big.iso/"}); err != nil {
		t.Fatal(err)
	}
	// SLO: two segments, also in the segments container.
	var slo []byte
	var entries []map[string]any
	for i := 0; i < 2; i++ {
		b := []byte(strings.Repeat(fmt.Sprintf("slo part %d|", i), 120000)) // SLO segments are at least 1 MiB but the last
		if i == 1 {
			b = b[:5000]
		}
		slo = append(slo, b...)
		name := fmt.Sprintf("video.mp4/slo/%08d", i)
		put(t, c, segs, name, b, "application/octet-stream", nil)
		entries = append(entries, map[string]any{"path": "/" + segs + "/" + name, "etag": md5hex(b), "size_bytes": len(b)})
	}
	sd.slo, sd.sloBody = "video.mp4", slo
	body, _ := json.Marshal(entries)
	resp, _, err := c.Call(ctx, c.StorageUrl, swift.RequestOpts{Container: main, ObjectName: "video.mp4", Operation: "PUT",
		Parameters: url.Values{"multipart-manifest": {"put"}}, Body: strings.NewReader(string(body)),
		Headers: swift.Headers{"Content-Type": "video/mp4", "X-Object-Meta-Title": "holidays"}})
	if err != nil {
		t.Fatalf("slo put: %v", err)
	}
	resp.Body.Close()
	return sd
}

func objIn(m map[string]any) cty.Value { return sdktest.Object(m) }

func src(s *testenv.Swift, m map[string]any) map[string]any {
	m["source_auth_url"] = s.AuthURL
	m["source_user"] = s.Accounts[0].User
	m["source_key"] = s.Accounts[0].Key
	return m
}

func dstAccount(s *testenv.Swift, m map[string]any) map[string]any {
	m["target_auth_url"] = s.AuthURL
	m["target_user"] = s.Accounts[1].User
	m["target_key"] = s.Accounts[1].Key
	return m
}

func outInt(t *testing.T, res *sdk.Result, name string) int64 {
	t.Helper()
	v := res.Outputs.GetAttr(name)
	if v.IsNull() {
		t.Fatalf("output %s is null", name)
	}
	n, _ := v.AsBigFloat().Int64()
	return n
}

func kind(err error) sdk.Kind { return kindOf(err) }

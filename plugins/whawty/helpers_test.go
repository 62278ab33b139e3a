package whawty

import (
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/plugins/whawty/whawtytest"
	"github.com/runbookdev/runbook/sdk"
)

// keyA is the test vector's hmac key: 32 ASCII 'A', the key of set 1 in
// whawtytest.Config.
var keyA = whawtytest.HMACKey

// fastScrypt is a cheap scrypt set for tests.
var fastScrypt = &paramSet{ID: 1, Scrypt: &scryptParams{HMACKey: keyA, Cost: 4, R: 8, P: 1}}

// fastArgon is a cheap argon2id set for tests.
var fastArgon = &paramSet{ID: 2, Argon2: &argon2Params{Time: 1, Memory: 64, Threads: 1, Length: 32}}

// hashFor returns a hash file's content for password with set.
func hashFor(t testing.TB, set *paramSet, password string) string {
	t.Helper()
	h := hashLine{Format: set.format(), LastChange: 1700000000, ParamID: set.ID}
	var err error
	if set.Scrypt != nil {
		h.Salt = make([]byte, 32)
		_, _ = rand.Read(h.Salt)
		h.Hash, err = scryptHMAC(*set.Scrypt, password, h.Salt)
	} else {
		h.Salt = make([]byte, 16)
		_, _ = rand.Read(h.Salt)
		h.Hash, err = argon2Tag(*set.Argon2, password, h.Salt)
	}
	if err != nil {
		t.Fatal(err)
	}
	return formatHashLine(h) + "\n"
}

// newStore creates a store directory with .tmp and the given files
// (name -> content), mode 0600.
func newStore(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o700)
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// snapshot maps every entry of dir (recursively) to "mode content".
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fi.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is an sdk.Events that keeps everything.
type recorder struct {
	mu         sync.Mutex // guards the fields below
	logs       []string
	progress   [][3]int64
	checkpoint []byte // the last one
}

func (r *recorder) Log(l sdk.Level, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, l.String()+": "+msg)
}

func (r *recorder) Progress(cur, total int64, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = append(r.progress, [3]int64{cur, total})
}

func (r *recorder) Checkpoint(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checkpoint = append([]byte(nil), b...)
	return nil
}

func (r *recorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

// obj builds an inputs object from Go values.
func obj(m map[string]any) cty.Value {
	vals := map[string]cty.Value{}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			vals[k] = cty.StringVal(v)
		case int:
			vals[k] = cty.NumberIntVal(int64(v))
		case float64:
			vals[k] = cty.NumberFloatVal(v)
		case bool:
			vals[k] = cty.BoolVal(v)
		case cty.Value:
			vals[k] = v
		default:
			panic(fmt.Sprintf("obj: %T", v))
		}
	}
	return cty.ObjectVal(vals)
}

var provider = sdk.Local(New())

func apply(t testing.TB, action string, in map[string]any) (*sdk.Result, *recorder, error) {
	t.Helper()
	rec := &recorder{}
	res, err := provider.Apply(context.Background(), action, &sdk.ApplyRequest{Inputs: obj(in)}, rec)
	return res, rec, err
}

func mustApply(t testing.TB, action string, in map[string]any) (*sdk.Result, *recorder) {
	t.Helper()
	res, rec, err := apply(t, action, in)
	if err != nil {
		t.Fatalf("%s: %v\nlogs:\n%s", action, err, rec.all())
	}
	return res, rec
}

func undo(t testing.TB, action string, in map[string]any, res *sdk.Result) error {
	t.Helper()
	req := &sdk.UndoRequest{Inputs: obj(in)}
	if res != nil {
		req.Outputs, req.UndoState = res.Outputs, res.UndoState
	}
	return provider.Undo(context.Background(), action, req, &recorder{})
}

// undoWith undoes with Force set as given and returns the undo's events.
func undoWith(t testing.TB, action string, in map[string]any, res *sdk.Result, force bool) (*recorder, error) {
	t.Helper()
	req := &sdk.UndoRequest{Inputs: obj(in), Force: force}
	if res != nil {
		req.Outputs, req.UndoState = res.Outputs, res.UndoState
	}
	rec := &recorder{}
	return rec, provider.Undo(context.Background(), action, req, rec)
}

// setsOf parses a config's default and set ids (sorted).
func setsOf(t testing.TB, text string) (uint64, []uint64) {
	t.Helper()
	c, err := parseConfig([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	ids := append([]uint64(nil), c.IDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return c.Default, ids
}

func kindOf(err error) sdk.Kind { return sdk.Classify(err).Kind }

func outNum(t testing.TB, res *sdk.Result, name string) int64 {
	t.Helper()
	v := res.Outputs.GetAttr(name)
	n, _ := v.AsBigFloat().Int64()
	return n
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Package couchtest holds what the couchdb plugin's tests and the shipped
// runbooks' tests share: a pair of CouchDB-compatible servers started once
// per test binary, unique database names, and Cozy-shaped documents.
package couchtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/runbookdev/runbook/internal/testenv"
)

// Pair is a source and a target server shared by the tests of one binary
// (starting a pouchdb-server costs a second of CPU); tests use their own
// database names (DBName). Call Stop from TestMain.
type Pair struct {
	once     sync.Once
	dir      string
	src, dst *testenv.CouchDB // set once by once
	err      error
}

// Servers starts the pair on first use and returns it; it skips the test
// when no server is installed.
func (p *Pair) Servers(t *testing.T) (src, dst *testenv.CouchDB) {
	t.Helper()
	p.once.Do(func() {
		if p.dir, p.err = os.MkdirTemp("", "runbook-couchdb-test-"); p.err != nil {
			return
		}
		for _, x := range []struct {
			name string
			dst  **testenv.CouchDB
		}{{"src", &p.src}, {"dst", &p.dst}} {
			d := filepath.Join(p.dir, x.name)
			if p.err = os.Mkdir(d, 0o700); p.err != nil {
				return
			}
			if *x.dst, p.err = testenv.NewCouchDB(d); p.err != nil {
				return
			}
		}
	})
	if errors.Is(p.err, testenv.ErrNotInstalled) {
		testenv.Unavailable(t, "couchdb: %v", p.err)
	}
	if p.err != nil {
		t.Fatalf("couchdb: %v", p.err)
	}
	return p.src, p.dst
}

// Stop stops the servers the pair started and removes their data.
func (p *Pair) Stop() {
	for _, s := range []*testenv.CouchDB{p.src, p.dst} {
		if s != nil {
			s.Stop()
		}
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// dbSeq makes database names unique across -count runs.
var dbSeq atomic.Int64

// DBName is a database name unique to the calling test.
func DBName(t *testing.T, base string) string {
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	return fmt.Sprintf("%s-%08x-%d", base, h.Sum32(), dbSeq.Add(1))
}

// CanonicalFull is a document's JSON with attachments reduced to their
// content type and data.
func CanonicalFull(d map[string]any) string {
	if atts, ok := d["_attachments"].(map[string]any); ok {
		na := map[string]any{}
		for n, a := range atts {
			am, _ := a.(map[string]any)
			na[n] = map[string]any{"content_type": am["content_type"], "data": am["data"]}
		}
		d["_attachments"] = na
	}
	b, _ := json.Marshal(d)
	return string(b)
}

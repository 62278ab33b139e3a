package nextcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// trackStore keeps the tracking documents and the account of each
// instance: in files (tracking_dir) or in CouchDB, as cozy-stack does.
type trackStore interface {
	// lock takes the instance's lock, which every writer takes.
	lock(instance string) (func(), error)
	activeDoc(instance string) (*trackDoc, error)
	get(instance, id string) (*trackDoc, error)
	put(d *trackDoc) error
	putAccount(instance string, a *account) error
	// docRef names a document for the operator (a path or a URL without
	// credentials).
	docRef(instance, id string) string
}

// storeAttrs choose the tracking store: tracking_dir or a CouchDB server.
var storeAttrs = []sdk.Attribute{
	{Name: "tracking_dir", Type: cty.String, Description: "Directory of the tracking documents (migrations/INSTANCE/ID.json) and accounts (accounts/INSTANCE.json, mode 0600: the only place the password is kept). Set this or couchdb_url."},
	{Name: "couchdb_url", Type: cty.String, Sensitive: true, Description: "CouchDB server keeping the tracking documents as cozy-stack does: database INSTANCE/io.cozy.nextcloud.migrations (e.g. alice-example-net%2Fio-cozy-nextcloud-migrations), the account in INSTANCE/io.cozy.accounts; the databases are created when missing. Credentials may be in the URL; never printed. Set this or tracking_dir."},
	{Name: "couchdb_username", Type: cty.String, Description: "CouchDB user name."},
	{Name: "couchdb_password", Type: cty.String, Sensitive: true, Description: "CouchDB password; never printed."},
}

// openStore builds the store the inputs name.
func openStore(in cty.Value) (trackStore, error) {
	dir, cu := ctyx.StringAttr(in, "tracking_dir"), ctyx.StringAttr(in, "couchdb_url")
	switch {
	case dir != "" && cu != "":
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set one of them", "tracking_dir and couchdb_url are both set")
	case dir != "":
		return fileStore{dir: dir}, nil
	case cu != "":
		c, err := NewClient(cu, ctyx.StringAttr(in, "couchdb_username"), ctyx.StringAttr(in, "couchdb_password"))
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "give CouchDB's URL, e.g. http://127.0.0.1:5984", "couchdb_url is not an http(s) URL")
		}
		return &couchStore{c: c}, nil
	}
	return nil, sdk.Errorf(sdk.KindInvalid, false, "set tracking_dir or couchdb_url", "no tracking store")
}

func validateStore(in cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	dir, cu := ctyx.Attr(in, "tracking_dir"), ctyx.Attr(in, "couchdb_url")
	if dir.IsKnown() && cu.IsKnown() && dir.IsNull() == cu.IsNull() {
		d = d.Errorf([]string{"tracking_dir"}, "set exactly one of tracking_dir and couchdb_url")
	}
	return d
}

func (s fileStore) docRef(instance, id string) string { return s.docPath(instance, id) }

// couchStore keeps the documents in CouchDB, one database per instance and
// doctype, named as cozy-stack names them.
type couchStore struct{ c *Client }

const (
	doctypeMigrations = "io.cozy.nextcloud.migrations"
	doctypeAccounts   = "io.cozy.accounts"
	// lockID is the per-instance lock document (a _local document: never
	// replicated).
	lockID = "_local/runbook-nextcloud-lock"
)

// couchDBName is cozy-stack's database name of an instance's doctype:
// lowercased, "." and ":" turned into "-", the slash escaped.
func couchDBName(instance, doctype string) string {
	r := strings.NewReplacer(".", "-", ":", "-")
	return r.Replace(strings.ToLower(instance)) + "%2F" + r.Replace(doctype)
}

// req sends a request to a database path (already escaped) and decodes
// the JSON answer into out (when not nil).
func (s *couchStore) req(ctx context.Context, method, p string, body, out any) error {
	r := Request{Method: method, Path: p, Raw: true, Header: http.Header{"Accept": {"application/json"}}, Idempotent: method == http.MethodGet}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		r.Length = int64(len(b))
		r.Body = func() (io.Reader, error) { return bytes.NewReader(b), nil }
	}
	resp, err := s.c.Do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
}

func ctx30() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// ensureDB creates a database when missing.
func (s *couchStore) ensureDB(ctx context.Context, db string) error {
	err := s.req(ctx, http.MethodPut, "/"+db, nil, nil)
	if err == nil || statusOf(err) == http.StatusPreconditionFailed {
		return nil
	}
	return fmt.Errorf("create database %s: %w", db, err)
}

// putDoc writes a document (with its _rev when updating) and returns the
// new revision; created the database first when missing.
func (s *couchStore) putDoc(ctx context.Context, db, id string, doc any) (string, error) {
	var res struct {
		Rev string `json:"rev"`
	}
	p := "/" + db + "/" + escapeDocID(id)
	err := s.req(ctx, http.MethodPut, p, doc, &res)
	if kindOf(err) == sdk.KindNotFound {
		if err := s.ensureDB(ctx, db); err != nil {
			return "", err
		}
		err = s.req(ctx, http.MethodPut, p, doc, &res)
	}
	return res.Rev, err
}

func escapeDocID(id string) string {
	if rest, ok := strings.CutPrefix(id, "_local/"); ok {
		return "_local/" + url.PathEscape(rest)
	}
	return url.PathEscape(id)
}

func (s *couchStore) lock(instance string) (func(), error) {
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	ctx, cancel := ctx30()
	defer cancel()
	db := couchDBName(instance, doctypeMigrations)
	host, _ := os.Hostname()
	for i := 0; i < 200; i++ {
		rev, err := s.putDoc(ctx, db, lockID, map[string]any{"owner": host, "at": time.Now().Unix()})
		if err == nil {
			return func() {
				ctx, cancel := ctx30()
				defer cancel()
				_ = s.req(ctx, http.MethodDelete, "/"+db+"/"+lockID+"?rev="+url.QueryEscape(rev), nil, nil)
			}, nil
		}
		if statusOf(err) != http.StatusConflict {
			return nil, fmt.Errorf("lock %s: %w", instance, err)
		}
		// Held: taken over when older than two minutes (its owner died).
		var cur struct {
			Rev string `json:"_rev"`
			At  int64  `json:"at"`
		}
		if err := s.req(ctx, http.MethodGet, "/"+db+"/"+lockID, nil, &cur); err == nil && time.Since(time.Unix(cur.At, 0)) > 2*time.Minute {
			_ = s.req(ctx, http.MethodDelete, "/"+db+"/"+lockID+"?rev="+url.QueryEscape(cur.Rev), nil, nil)
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, sdk.Errorf(sdk.KindConflict, true, "another request for this instance is being made; retry", "instance %s is locked (%s)", instance, lockID)
}

func (s *couchStore) activeDoc(instance string) (*trackDoc, error) {
	ctx, cancel := ctx30()
	defer cancel()
	var res struct {
		Rows []struct {
			Doc json.RawMessage `json:"doc"`
		} `json:"rows"`
	}
	err := s.req(ctx, http.MethodGet, "/"+couchDBName(instance, doctypeMigrations)+"/_all_docs?include_docs=true", nil, &res)
	if kindOf(err) == sdk.KindNotFound {
		return nil, nil // no database: no migration yet
	}
	if err != nil {
		return nil, fmt.Errorf("list the migrations of %s: %w", instance, err)
	}
	for _, r := range res.Rows {
		var d trackDoc
		if json.Unmarshal(r.Doc, &d) == nil && d.active() && !strings.HasPrefix(d.ID, "_design/") {
			return &d, nil
		}
	}
	return nil, nil
}

func (s *couchStore) get(instance, id string) (*trackDoc, error) {
	ctx, cancel := ctx30()
	defer cancel()
	var raw json.RawMessage
	err := s.req(ctx, http.MethodGet, "/"+couchDBName(instance, doctypeMigrations)+"/"+escapeDocID(id), nil, &raw)
	if kindOf(err) == sdk.KindNotFound {
		return nil, sdk.Errorf(sdk.KindNotFound, false, "check the instance and the migration id", "no migration %s for %s", id, instance)
	}
	if err != nil {
		return nil, fmt.Errorf("tracking document %s: %w", id, err)
	}
	d, err := decodeTrackDoc(raw)
	if err != nil {
		return nil, fmt.Errorf("tracking document %s: %w", id, err)
	}
	return d, nil
}

func (s *couchStore) put(d *trackDoc) error {
	if d.Errors == nil {
		d.Errors = []trackError{}
	}
	if d.Skipped == nil {
		d.Skipped = []trackSkip{}
	}
	if beforeCouchPut != nil {
		beforeCouchPut(d.ID)
	}
	ctx, cancel := ctx30()
	defer cancel()
	body, err := d.body()
	if err != nil {
		return err
	}
	rev, err := s.putDoc(ctx, couchDBName(d.Instance, doctypeMigrations), d.ID, body)
	if err != nil {
		return fmt.Errorf("tracking document %s: %w", d.ID, err)
	}
	d.Rev = rev
	return nil
}

func (s *couchStore) putAccount(instance string, a *account) error {
	ctx, cancel := ctx30()
	defer cancel()
	db := couchDBName(instance, doctypeAccounts)
	// Overwrite the instance's account, as cozy-stack's trigger does.
	var cur struct {
		Rev string `json:"_rev"`
	}
	if err := s.req(ctx, http.MethodGet, "/"+db+"/"+escapeDocID(a.ID), nil, &cur); err != nil && kindOf(err) != sdk.KindNotFound {
		return err
	}
	doc := struct {
		*account
		Rev string `json:"_rev,omitempty"`
	}{a, cur.Rev}
	_, err := s.putDoc(ctx, db, a.ID, doc)
	return err
}

func (s *couchStore) docRef(instance, id string) string {
	return s.c.root.String() + "/" + couchDBName(instance, doctypeMigrations) + "/" + escapeDocID(id)
}

package nextcloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Tracking is a tracking store as `runbook consume` uses it: the account
// of an instance (the one place its credentials are kept) and
// read-modify-writes of migration documents under the instance's lock.
// It is either a directory (as tracking_dir) or a CouchDB server (as
// couchdb_url).
type Tracking struct {
	dir    string      // the file store's directory, or ""
	couch  *couchStore // the CouchDB store, or nil
	url    string      // CouchDB's URL with its credentials (for the runbook)
	secret string      // CouchDB's password, for masking
}

// Credentials are an account's Nextcloud URL, login and password.
type Credentials struct{ URL, Login, Password string }

// OpenTracking opens the tracking store spec names: a directory, or a
// CouchDB server as couchdb://USER:PASS@HOST:5984 (couchdbs:// for https)
// or http(s)://USER:PASS@HOST:5984.
func OpenTracking(spec string) (*Tracking, error) {
	scheme, rest, ok := strings.Cut(spec, "://")
	if !ok {
		if spec == "" {
			return nil, errors.New("no tracking store")
		}
		return &Tracking{dir: spec}, nil
	}
	switch scheme {
	case "couchdb":
		spec = "http://" + rest
	case "couchdbs":
		spec = "https://" + rest
	case "http", "https":
	default:
		return nil, fmt.Errorf("tracking store %s: want a directory, couchdb://, couchdbs:// or http(s)://", redactURL(spec))
	}
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracking store %s: not a URL", redactURL(spec))
	}
	c, err := NewClient(spec, "", "")
	if err != nil {
		return nil, fmt.Errorf("tracking store %s: %w", redactURL(spec), err)
	}
	t := &Tracking{couch: &couchStore{c: c}, url: spec}
	if u.User != nil {
		t.secret, _ = u.User.Password()
	}
	return t, nil
}

// String names the store without credentials.
func (t *Tracking) String() string {
	if t.couch != nil {
		return redactURL(t.url)
	}
	return t.dir
}

// Secrets are the values never to print (CouchDB's password).
func (t *Tracking) Secrets() []string {
	if t.secret == "" {
		return nil
	}
	return []string{t.secret}
}

// Dir is the file store's directory ("" for CouchDB).
func (t *Tracking) Dir() string { return t.dir }

// VarArgs are the runbook variables that name this store for the
// migration actions: tracking_dir, or couchdb_url (sensitive).
func (t *Tracking) VarArgs() []string {
	if t.couch != nil {
		return []string{"couchdb_url=" + t.url}
	}
	return []string{"tracking_dir=" + t.dir}
}

func (t *Tracking) store() trackStore {
	if t.couch != nil {
		return t.couch
	}
	return fileStore{dir: t.dir}
}

// Account returns the credentials of the migration's account: the
// account the tracking document names, never anything from a message.
func (t *Tracking) Account(instance, migrationID string) (Credentials, error) {
	if err := checkInstance(instance); err != nil {
		return Credentials{}, err
	}
	d, err := t.store().get(instance, migrationID)
	if err != nil {
		return Credentials{}, err
	}
	var a account
	if t.couch == nil {
		b, err := os.ReadFile(filepath.Join(t.dir, "accounts", instance+".json"))
		if err != nil {
			return Credentials{}, fmt.Errorf("read the account of %s: %w", instance, err)
		}
		if err := json.Unmarshal(b, &a); err != nil {
			return Credentials{}, fmt.Errorf("the account of %s: %w", instance, err)
		}
	} else {
		if d.AccountID == "" {
			return Credentials{}, fmt.Errorf("migration %s names no account", migrationID)
		}
		ctx, cancel := ctx30()
		defer cancel()
		p := "/" + couchDBName(instance, doctypeAccounts) + "/" + escapeDocID(d.AccountID)
		if err := t.couch.req(ctx, http.MethodGet, p, nil, &a); err != nil {
			return Credentials{}, fmt.Errorf("read the account %s of %s: %w", d.AccountID, instance, err)
		}
	}
	if d.AccountID != "" && a.ID != "" && a.ID != d.AccountID {
		return Credentials{}, fmt.Errorf("the account of %s is %s, not %s as migration %s says", instance, a.ID, d.AccountID, migrationID)
	}
	return Credentials{URL: a.Auth.URL, Login: a.Auth.Login, Password: a.Auth.Password}, nil
}

// Doc reads a migration's tracking document.
func (t *Tracking) Doc(instance, id string) (map[string]any, error) {
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	if t.couch == nil {
		return readDocFile(fileStore{dir: t.dir}.docPath(instance, id))
	}
	ctx, cancel := ctx30()
	defer cancel()
	doc := map[string]any{}
	if err := t.couch.req(ctx, http.MethodGet, "/"+couchDBName(instance, doctypeMigrations)+"/"+escapeDocID(id), nil, &doc); err != nil {
		return nil, fmt.Errorf("tracking document %s: %w", id, err)
	}
	return doc, nil
}

func readDocFile(p string) (map[string]any, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return doc, nil
}

// conflictRetries is how many times a document written meanwhile (409) is
// read again and the change applied again.
const conflictRetries = 10

// Update applies f to a migration's tracking document under the
// instance's lock. In CouchDB the write carries the revision read; one
// written meanwhile (409) is read again and f applied again.
func (t *Tracking) Update(instance, id string, f func(doc map[string]any)) error {
	if err := checkInstance(instance); err != nil {
		return err
	}
	unlock, err := t.store().lock(instance)
	if err != nil {
		return err
	}
	defer unlock()
	if t.couch == nil {
		p := fileStore{dir: t.dir}.docPath(instance, id)
		doc, err := readDocFile(p)
		if err != nil {
			return err
		}
		f(doc)
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		return writeAtomic(p, b, 0o644)
	}
	db := couchDBName(instance, doctypeMigrations)
	for attempt := 0; ; attempt++ {
		doc, err := t.Doc(instance, id)
		if err != nil {
			return err
		}
		f(doc)
		if beforeCouchPut != nil {
			beforeCouchPut(id)
		}
		ctx, cancel := ctx30()
		_, err = t.couch.putDoc(ctx, db, id, doc)
		cancel()
		if statusOf(err) == http.StatusConflict && attempt < conflictRetries {
			continue
		}
		if err != nil {
			return fmt.Errorf("tracking document %s: %w", id, err)
		}
		return nil
	}
}

// beforeCouchPut, set by tests, runs between reading a document and
// writing it back, where another writer may come in.
var beforeCouchPut func(id string)

// retryConflict runs a read-modify-write again when CouchDB answers 409
// (the document was written meanwhile).
func retryConflict(f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if statusOf(err) != http.StatusConflict || attempt >= conflictRetries {
			return err
		}
	}
}

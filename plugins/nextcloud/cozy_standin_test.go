package nextcloud

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cozyStandIn implements the part of cozy-stack's files API that a copy
// uses, exactly as the facts describe it (no cozy-stack can run here: its
// module is not served by the Go module proxy), storing into a real
// directory:
//   - POST /files/:dir-id?Type=directory|file&Name=…&CreatedAt=&UpdatedAt=
//     (RFC 3339) with a bearer token; files need Content-Length and
//     Content-MD5 (base64; cozy-stack takes uploads without it, the
//     stand-in refuses them so that the test proves it is sent); 201 with
//     the JSON:API document, 404 unknown parent, 409 name taken, 412 MD5
//     mismatch, 413 over quota, 422 bad parameters;
//   - GET /files/metadata?Path=, GET /files/:id (folders list their
//     contents in relationships.contents.data, page[limit] honoured);
//   - DELETE /files/:id to the trash, If-Match: rev checked (412).
//
// The revision is derived from what is on disk, so a file changed behind
// the API's back gets a new one, as a changed document would.
type cozyStandIn struct {
	URL   string
	Root  string // the instance's files
	token string

	Mu     sync.Mutex
	Quota  int64          // bytes; 0 = unlimited
	Damage map[string]int // file name → uploads to answer 412 (as if damaged on the way)
	Posts  []cozyPost     // every file upload received
	ids    map[string]string
	paths  map[string]string // id → path; "" once trashed
	trash  map[string]bool
}

// cozyPost is what the stand-in saw of one upload.
type cozyPost struct {
	Name, CreatedAt, UpdatedAt, ContentMD5 string
}

func startCozy(t *testing.T, token string) *cozyStandIn {
	t.Helper()
	s := &cozyStandIn{Root: t.TempDir(), token: token, Damage: map[string]int{},
		ids: map[string]string{"/": cozyRootID}, paths: map[string]string{cozyRootID: "/"}, trash: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *cozyStandIn) disk(p string) string { return filepath.Join(s.Root, filepath.FromSlash(p)) }

// idOf returns the id of a path, giving one to what was created on disk
// directly.
func (s *cozyStandIn) idOf(p string) string {
	if id, ok := s.ids[p]; ok {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.ids[p], s.paths[id] = id, p
	return id
}

func jsonErr(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{"status": strconv.Itoa(status), "title": http.StatusText(status), "detail": msg}}})
}

func (s *cozyStandIn) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		jsonErr(w, http.StatusUnauthorized, "Invalid JWT token")
		return
	}
	s.Mu.Lock()
	defer s.Mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/files/")
	switch {
	case !ok:
		jsonErr(w, http.StatusNotFound, "no such route")
	case r.Method == http.MethodGet && rest == "metadata":
		p := r.URL.Query().Get("Path")
		if _, err := os.Stat(s.disk(p)); err != nil || !strings.HasPrefix(p, "/") {
			jsonErr(w, http.StatusNotFound, "File or directory is not found")
			return
		}
		s.reply(w, http.StatusOK, path.Clean(p), 0)
	case r.Method == http.MethodGet:
		p, ok := s.paths[rest]
		if !ok {
			jsonErr(w, http.StatusNotFound, "File or directory is not found")
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("page[limit]"))
		if limit <= 0 {
			limit = 30
		}
		s.reply(w, http.StatusOK, p, limit)
	case r.Method == http.MethodPost:
		s.create(w, r, rest)
	case r.Method == http.MethodDelete:
		p, ok := s.paths[rest]
		if !ok || s.trash[rest] {
			jsonErr(w, http.StatusNotFound, "File or directory is not found")
			return
		}
		if m := r.Header.Get("If-Match"); m != "" && m != s.rev(p) {
			jsonErr(w, http.StatusPreconditionFailed, "Invalid revision")
			return
		}
		// The trash is outside the tree here; only its flag matters.
		tp := filepath.Join(s.Root+"-trash", rest)
		_ = os.MkdirAll(filepath.Dir(tp), 0o755)
		if err := os.Rename(s.disk(p), tp); err != nil {
			jsonErr(w, http.StatusInternalServerError, err.Error())
			return
		}
		s.trash[rest] = true
		delete(s.ids, p)
		w.Header().Set("Content-Type", "application/vnd.api+json")
		_, _ = io.WriteString(w, `{"data":{"type":"io.cozy.files","id":"`+rest+`","attributes":{"trashed":true}}}`)
	default:
		jsonErr(w, http.StatusMethodNotAllowed, "")
	}
}

func (s *cozyStandIn) create(w http.ResponseWriter, r *http.Request, dirID string) {
	q := r.URL.Query()
	parent, ok := s.paths[dirID]
	if !ok || s.trash[dirID] {
		jsonErr(w, http.StatusNotFound, "Parent directory is not found")
		return
	}
	name := q.Get("Name")
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		jsonErr(w, http.StatusUnprocessableEntity, "Invalid file name")
		return
	}
	var times []time.Time
	for _, k := range []string{"CreatedAt", "UpdatedAt"} {
		if v := q.Get(k); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				jsonErr(w, http.StatusUnprocessableEntity, "Invalid "+k)
				return
			}
			times = append(times, tm)
		}
	}
	p := path.Join(parent, name)
	if _, err := os.Lstat(s.disk(p)); err == nil {
		jsonErr(w, http.StatusConflict, "Conflict: file already exists")
		return
	}
	switch q.Get("Type") {
	case "directory":
		if err := os.Mkdir(s.disk(p), 0o755); err != nil {
			jsonErr(w, http.StatusInternalServerError, err.Error())
			return
		}
	case "file":
		if !s.upload(w, r, p, name) {
			return
		}
	default:
		jsonErr(w, http.StatusUnprocessableEntity, "Invalid Type")
		return
	}
	if len(times) > 0 {
		mt := times[len(times)-1]
		_ = os.Chtimes(s.disk(p), mt, mt)
	}
	s.reply(w, http.StatusCreated, p, 0)
}

// upload writes a file's body; false when it answered an error.
func (s *cozyStandIn) upload(w http.ResponseWriter, r *http.Request, p, name string) bool {
	q := r.URL.Query()
	s.Posts = append(s.Posts, cozyPost{Name: name, CreatedAt: q.Get("CreatedAt"), UpdatedAt: q.Get("UpdatedAt"), ContentMD5: r.Header.Get("Content-MD5")})
	want, err := base64.StdEncoding.DecodeString(r.Header.Get("Content-MD5"))
	if err != nil || len(want) != md5.Size {
		jsonErr(w, http.StatusBadRequest, "missing or invalid Content-MD5")
		return false
	}
	if r.ContentLength < 0 {
		jsonErr(w, http.StatusLengthRequired, "Content-Length is required")
		return false
	}
	if s.Quota > 0 && s.used()+r.ContentLength > s.Quota {
		jsonErr(w, http.StatusRequestEntityTooLarge, "The file is too big and exceeds the disk quota")
		return false
	}
	tmp := s.disk(p) + ".upload"
	f, err := os.Create(tmp)
	if err != nil {
		jsonErr(w, http.StatusInternalServerError, err.Error())
		return false
	}
	h := md5.New()
	n, err := io.Copy(io.MultiWriter(f, h), r.Body)
	f.Close()
	if err != nil || n != r.ContentLength {
		os.Remove(tmp)
		jsonErr(w, http.StatusUnprocessableEntity, fmt.Sprintf("read %d bytes of %d", n, r.ContentLength))
		return false
	}
	got := h.Sum(nil)
	if s.Damage[name] > 0 {
		s.Damage[name]--
		got[0] ^= 0xff
	}
	if string(got) != string(want) {
		os.Remove(tmp)
		jsonErr(w, http.StatusPreconditionFailed, "Invalid hash")
		return false
	}
	if err := os.Rename(tmp, s.disk(p)); err != nil {
		jsonErr(w, http.StatusInternalServerError, err.Error())
		return false
	}
	return true
}

func (s *cozyStandIn) used() int64 {
	var n int64
	_ = filepath.Walk(s.Root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// rev is a revision derived from the path's state on disk.
func (s *cozyStandIn) rev(p string) string {
	st, err := os.Stat(s.disk(p))
	if err != nil {
		return ""
	}
	h := sha1.New()
	fmt.Fprintf(h, "%s|%d|%d|%s", p, st.Size(), st.ModTime().UnixNano(), fileMD5(s.disk(p)))
	return "1-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func fileMD5(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// reply writes the JSON:API document of a path; folders list up to limit
// children.
func (s *cozyStandIn) reply(w http.ResponseWriter, status int, p string, limit int) {
	st, err := os.Stat(s.disk(p))
	if err != nil {
		jsonErr(w, http.StatusNotFound, "File or directory is not found")
		return
	}
	id := s.idOf(p)
	dirID := ""
	if p != "/" {
		dirID = s.idOf(path.Dir(p))
	}
	attrs := map[string]any{"name": path.Base(p), "dir_id": dirID, "path": p, "trashed": false,
		"created_at": st.ModTime().UTC().Format(time.RFC3339), "updated_at": st.ModTime().UTC().Format(time.RFC3339)}
	doc := map[string]any{"type": "io.cozy.files", "id": id, "attributes": attrs, "meta": map[string]any{"rev": s.rev(p)}}
	if st.IsDir() {
		attrs["type"] = "directory"
		kids := []any{}
		ents, _ := os.ReadDir(s.disk(p))
		for _, e := range ents {
			if len(kids) == limit {
				break
			}
			if !strings.HasSuffix(e.Name(), ".upload") {
				kids = append(kids, map[string]any{"type": "io.cozy.files", "id": s.idOf(path.Join(p, e.Name()))})
			}
		}
		doc["relationships"] = map[string]any{"contents": map[string]any{"data": kids}}
	} else {
		attrs["type"] = "file"
		attrs["size"] = strconv.FormatInt(st.Size(), 10)
		attrs["md5sum"] = fileMD5(s.disk(p))
	}
	w.Header().Set("Content-Type", "application/vnd.api+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"data": doc})
}

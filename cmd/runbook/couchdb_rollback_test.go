package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
)

var (
	builtOnce sync.Once
	builtBin  string
	builtErr  error
)

// runbookBinary builds the runbook binary once for the package's tests.
func runbookBinary(t *testing.T) string {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runbook-bin")
		if err != nil {
			builtErr = err
			return
		}
		builtBin = filepath.Join(dir, "runbook")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			builtErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if builtErr != nil {
		t.Fatal(builtErr)
	}
	return builtBin
}

// couchReq sends one request to a CouchDB as its admin and returns the
// status code.
func couchReq(t *testing.T, c *testenv.CouchDB, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(c.Username, c.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLaterRollbackOfReplicate: a couchdb.replicate step applied by the
// real binary, with the CouchDB passwords as sensitive variables and no
// state key set by the user, is rolled back by a later `runbook rollback`
// given nothing again: the first apply created the user's state key and
// sealed the passwords with it. No password is in clear in the state
// directory or anything the commands print.
func TestLaterRollbackOfReplicate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two CouchDB servers and builds the binary")
	}
	src, dst := testenv.StartCouchDB(t), testenv.StartCouchDB(t)
	bin := runbookBinary(t)
	if code := couchReq(t, src, "PUT", "/books", ""); code != http.StatusCreated {
		t.Fatalf("create source database: %d", code)
	}
	if code := couchReq(t, src, "POST", "/books/_bulk_docs", `{"docs":[{"_id":"a","n":1},{"_id":"b","n":2},{"_id":"c","n":3}]}`); code != http.StatusCreated {
		t.Fatalf("seed: %d", code)
	}

	dir := t.TempDir()
	cfg := t.TempDir() // the user's config directory: no state key yet
	rb := fmt.Sprintf(`variable "source_password" {
  type      = string
  sensitive = true
}
variable "target_password" {
  type      = string
  sensitive = true
}
step "couchdb.replicate" "copy" {
  with = {
    source_url = %q, source_username = "admin", source_password = var.source_password
    target_url = %q, target_username = "admin", target_password = var.target_password
    databases  = ["books"]
  }
  rollback = native
}
`, src.URL, dst.URL)
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(rb), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"XDG_CONFIG_HOME=" + cfg, "RUNBOOK_SELF_EXE=" + bin}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNBOOK_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	var printed bytes.Buffer
	runEnv := func(env []string, args ...string) ([]byte, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		printed.Write(out)
		return out, err
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := runEnv(env, args...); err != nil {
			t.Fatalf("runbook %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	run("apply", "-auto-approve", "-var", "source_password="+src.Password, "-var", "target_password="+dst.Password, "main.hcl")
	if code := couchReq(t, dst, "GET", "/books/c", ""); code != http.StatusOK {
		t.Fatalf("the copy is not on the target: %d", code)
	}
	if _, err := os.Stat(filepath.Join(cfg, "runbook", "state.key")); err != nil {
		t.Fatalf("the first apply created no state key: %v", err)
	}

	// Another user (another config directory, no key): the sealed
	// passwords cannot be read, so rollback asks for them and, given none,
	// undoes nothing; the run stays as it was.
	other := append([]string{"XDG_CONFIG_HOME=" + t.TempDir()}, env[1:]...)
	out, err := runEnv(other, "rollback", "-auto-approve")
	if err == nil || !bytes.Contains(out, []byte("target_password")) {
		t.Fatalf("rollback without the key: %v, want the passwords asked for:\n%s", err, out)
	}
	if code := couchReq(t, dst, "GET", "/books", ""); code != http.StatusOK {
		t.Fatalf("a rollback without the passwords touched the target: %d", code)
	}

	// Later, from the same directory, with no password given again.
	run("rollback", "-auto-approve")
	if code := couchReq(t, dst, "GET", "/books", ""); code != http.StatusNotFound {
		t.Fatalf("the target database the step created is still there after rollback: %d\n%s", code, printed.String())
	}
	run("runs", "ls")
	ids, _ := os.ReadDir(filepath.Join(dir, ".runbook", "runs"))
	for _, id := range ids {
		run("runs", "show", id.Name())
		run("runs", "show", "-json", id.Name())
	}

	all := printed.Bytes()
	filepath.WalkDir(filepath.Join(dir, ".runbook"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	if !bytes.Contains(all, []byte("rolled back")) {
		t.Errorf("nothing says the run was rolled back:\n%s", printed.String())
	}
	for _, pw := range []string{src.Password, dst.Password} {
		if bytes.Contains(all, []byte(pw)) {
			t.Errorf("a CouchDB password is in clear in the state directory or the output")
		}
	}
}

package runbooks_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/internal/testenv"
)

// withUserinfo is s's URL with its credentials inside (user:pass@host), a
// form the couchdb plugin documents.
func withUserinfo(t *testing.T, s *testenv.CouchDB) string {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(s.Username, s.Password)
	return u.String()
}

// TestCouchDBCredentialsInURLCanary runs cozy-v3-move.hcl with the real
// binary and its out-of-process couchdb plugin, the servers' credentials
// given inside the URLs only: once through, once failing in the plugin
// (a database the source lacks) and rolled back. Neither password shows
// in any byte of the state directory, the output (JSON events included),
// or runs show.
func TestCouchDBCredentialsInURLCanary(t *testing.T) {
	t.Parallel()
	src, dst := couchServers.Servers(t)
	vars, files, _ := v3Setup(t, src, dst)
	dir := t.TempDir()
	bin := filepath.Join(dir, "runbook")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/runbook").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	hcl, err := os.ReadFile("cozy-v3-move.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "move.hcl"), hcl, 0o600); err != nil {
		t.Fatal(err)
	}
	vars["source_url"], vars["target_url"] = withUserinfo(t, src), withUserinfo(t, dst)
	vars["source_password"], vars["target_password"] = "", ""
	secrets := []string{src.Password, dst.Password}
	var out bytes.Buffer
	runbook := func(wantCode int, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		var o bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &o
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		out.Write(o.Bytes())
		if code != wantCode {
			t.Fatalf("runbook %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, o.String())
		}
	}
	apply := func(wantCode int, vars map[string]string) {
		t.Helper()
		args := []string{"apply", "-auto-approve", "-json"}
		for k, v := range vars {
			args = append(args, "-var", k+"="+v)
		}
		runbook(wantCode, append(args, "move.hcl")...)
	}
	// Fails in the plugin (a database the source lacks), after creating
	// one on the target: rolled back (exit 2).
	bad := map[string]string{}
	for k, v := range vars {
		bad[k] = v
	}
	dbs, _ := json.Marshal([]string{files, files + "-missing"})
	bad["databases"] = string(dbs)
	apply(2, bad)
	apply(0, vars)
	var ls struct {
		Runs []struct {
			ID string `json:"id"`
		} `json:"runs"`
	}
	cmd := exec.Command(bin, "runs", "ls", "-json")
	cmd.Dir = dir
	js, err := cmd.Output()
	if err != nil {
		t.Fatalf("runs ls: %v", err)
	}
	if err := json.Unmarshal(js, &ls); err != nil || len(ls.Runs) != 2 {
		t.Fatalf("runs ls -json: %v %s", err, js)
	}
	for _, r := range ls.Runs {
		runbook(0, "runs", "show", r.ID)
		runbook(0, "runs", "show", "-json", r.ID)
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Errorf("the output shows a password:\n%s", out.String())
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == bin {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				i := bytes.Index(b, []byte(s))
				t.Errorf("%s holds a password: %s", path, b[max(0, i-300):min(len(b), i+50)])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package couchdb

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestKillAndResumeCLI is the end-to-end proof with the real binary and
// its out-of-process plugin: `runbook apply` copying 20,000 documents is
// killed (SIGKILL) mid-way, then `runbook resume` finishes the copy reading
// far fewer changes than the database holds. It takes about a minute, so
// it runs only with RUNBOOK_COUCHDB_E2E=1 (scripts/bench.d/couchdb.sh sets
// it).
func TestKillAndResumeCLI(t *testing.T) {
	if os.Getenv("RUNBOOK_COUCHDB_E2E") == "" {
		t.Skip("set RUNBOOK_COUCHDB_E2E=1 (make bench runs it)")
	}
	const total = 20000
	src, dst := testenv.StartCouchDB(t), testenv.StartCouchDB(t)
	sc := client(t, src)
	seed(t, sc, "big", smallDocs(total))

	dir := t.TempDir()
	bin := filepath.Join(dir, "runbook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/runbook").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rb := fmt.Sprintf(`runbook "move" {
  description = "copy one database"
}
variable "source_password" {
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
    databases = ["big"], checkpoint_interval = "1s"
  }
  rollback = native
}
output "changes_read" {
  value = step.copy.outputs.changes_read
}
`, src.URL, dst.URL)
	if err := os.WriteFile(filepath.Join(dir, "move.hcl"), []byte(rb), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := []string{"--var", "source_password=" + src.Password, "--var", "target_password=" + dst.Password}
	cmd := exec.Command(bin, append([]string{"apply", "move.hcl", "--auto-approve", "--json"}, vars...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once a quarter of the documents are copied and a checkpoint
	// followed.
	sc2 := bufio.NewScanner(stdout)
	progressed, killed := false, false
	for sc2.Scan() {
		var ev struct {
			Type    string `json:"type"`
			Current int64  `json:"current"`
			Unit    string `json:"unit"`
		}
		_ = json.Unmarshal(sc2.Bytes(), &ev)
		if ev.Type == "step_progress" && ev.Unit == "docs" && ev.Current >= total/4 {
			progressed = true
		}
		if progressed && ev.Type == "step_checkpoint" {
			_ = cmd.Process.Kill()
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("the run ended before it could be killed\n%s", stderr.String())
	}
	info, _ := client(t, dst).DBInfo(tctx(t), "big")
	t.Logf("killed with %d documents on the target", info.DocCount)
	if info.DocCount >= total {
		t.Fatal("the copy was complete when killed")
	}

	time.Sleep(200 * time.Millisecond)
	res := exec.Command(bin, append([]string{"resume", "--json"}, vars...)...)
	res.Dir = dir
	res.Env = append(os.Environ(), "RUNBOOK_SELF_EXE="+bin)
	out, err := res.Output()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	var read int64 = -1
	for _, line := range bytes.Split(out, []byte("\n")) {
		var ev struct {
			Type    string `json:"type"`
			State   string `json:"state"`
			Outputs struct {
				ChangesRead int64 `json:"changes_read"`
			} `json:"outputs"`
		}
		if json.Unmarshal(line, &ev) == nil && ev.Type == "run_finished" {
			if ev.State != "succeeded" {
				t.Fatalf("resumed run %s:\n%s", ev.State, out)
			}
			read = ev.Outputs.ChangesRead
		}
	}
	t.Logf("resumed run read %d changes of %d", read, total)
	if read < 0 || read > total-total/4 {
		t.Errorf("resumed run read %d changes of %d: it did not resume", read, total)
	}
	info, _ = client(t, dst).DBInfo(tctx(t), "big")
	if info.DocCount != total {
		t.Errorf("target has %d documents, want %d", info.DocCount, total)
	}
}

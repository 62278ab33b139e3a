package view

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/journal"
)

func sampleRun() *journal.State {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return journal.Replay([]*journal.Record{
		{Seq: 1, Time: t0, Type: journal.RecRunStarted, Meta: &journal.Meta{ID: "R1", Runbook: "rb", User: "u", Host: "h", PID: 7, Lock: "db",
			Files: []journal.FileHash{{Path: "/x/main.hcl", SHA256: strings.Repeat("a", 64)}}}},
		{Seq: 2, Time: t0, Type: journal.RecAttemptStarted, Step: "a", Attempt: 1},
		{Seq: 3, Time: t0.Add(time.Second), Type: journal.RecStepSucceeded, Step: "a", Attempt: 1},
		{Seq: 4, Time: t0.Add(time.Second), Type: journal.RecAttemptStarted, Step: "b", Attempt: 1},
		{Seq: 5, Time: t0.Add(2 * time.Second), Type: journal.RecStepFailed, Step: "b", Attempt: 1, Error: &journal.ErrorInfo{Message: "boom", Kind: "conflict"}},
		{Seq: 6, Time: t0.Add(2 * time.Second), Type: journal.RecRunState, State: journal.RunRollbackFailed},
	})
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// checkSchema walks a decoded document: every key (but those of free maps:
// step counts, variables, outputs) is snake_case and no value is null.
func checkSchema(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		t.Errorf("%s is null", path)
	case map[string]any:
		for k, x := range v {
			free := strings.HasSuffix(path, ".vars") || strings.HasSuffix(path, ".outputs") || strings.HasSuffix(path, "].steps")
			if !free && !snake.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", path, k)
			}
			checkSchema(t, path+"."+k, x)
		}
	case []any:
		for i, x := range v {
			checkSchema(t, path+"["+string(rune('0'+i%10))+"]", x)
		}
	}
}

func TestRunsJSONSchema(t *testing.T) {
	e := RunEntry{State: sampleRun(), Rollback: "runbook rollback R1"}
	var ls, show bytes.Buffer
	if err := WriteRuns(&ls, []RunEntry{e}, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteRun(&show, e, nil, true); err != nil {
		t.Fatal(err)
	}
	var lsDoc, showDoc map[string]any
	for _, d := range []struct {
		b   []byte
		out *map[string]any
	}{{ls.Bytes(), &lsDoc}, {show.Bytes(), &showDoc}} {
		if err := json.Unmarshal(d.b, d.out); err != nil {
			t.Fatalf("%v\n%s", err, d.b)
		}
		if (*d.out)["format_version"] != float64(RunsFormatVersion) {
			t.Errorf("no format_version:\n%s", d.b)
		}
		checkSchema(t, "", *d.out)
	}
	// runs show's run is runs ls's row plus the fields only show has.
	row := lsDoc["runs"].([]any)[0].(map[string]any)
	run := showDoc["run"].(map[string]any)
	for k, v := range row {
		if diff := cmp.Diff(v, run[k]); diff != "" {
			t.Errorf("run.%s differs between ls and show (-ls +show):\n%s", k, diff)
		}
	}
	want := map[string]any{"id": "R1", "state": "rollback_failed", "runbook": "rb", "started_at": "2026-01-02T03:04:05Z",
		"updated_at": "2026-01-02T03:04:07Z", "user": "u", "host": "h", "pid": float64(7), "lock": "db",
		"steps": map[string]any{"succeeded": float64(1), "failed": float64(1)}, "rollback_command": "runbook rollback R1"}
	if diff := cmp.Diff(want, row); diff != "" {
		t.Errorf("runs ls row (-want +got):\n%s", diff)
	}
	steps := showDoc["steps"].([]any)
	b := steps[1].(map[string]any)
	if b["address"] != "b" || b["state"] != "failed" || b["error"].(map[string]any)["kind"] != "conflict" {
		t.Errorf("step b = %v", b)
	}
}

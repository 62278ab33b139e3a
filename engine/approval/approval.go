// Package approval answers core.approve steps: it writes the approval file
// a waiting step reads (`runbook approve`, and the web viewer of `runbook
// serve`, both call Write).
package approval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// sanitize matches what core.approve replaces in a run id or step address.
var sanitize = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// Path is where the answer for step (an address) of run runID is read by
// the waiting core.approve step, under stateDir.
func Path(stateDir, runID, step string) string {
	return filepath.Join(stateDir, "approvals", sanitize.ReplaceAllString(runID, "_"), sanitize.ReplaceAllString(step, "_")+".json")
}

// Write records that by approved (or, approved false, rejected) step of
// run runID: the file appears whole (written beside it, then renamed).
func Write(stateDir, runID, step, by string, approved bool) error {
	rec := map[string]any{"approved_by": by, "at": time.Now().UTC().Format(time.RFC3339), "approved": approved}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := Path(stateDir, runID, step)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("approve %s: %w", step, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("approve %s: %w", step, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("approve %s: %w", step, err)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/internal/safeenv"
)

// Plan formats (plan -format).
const (
	planText     = "text"
	planJSON     = "json"
	planMarkdown = "markdown"
)

// checkPlanFormat refuses an unknown plan -format.
func checkPlanFormat(f string) error {
	switch f {
	case planText, planJSON, planMarkdown:
		return nil
	}
	return withCode(exitError, fmt.Errorf("-format is %s, %s or %s, not %q", planText, planJSON, planMarkdown, f))
}

// runPlanMarkdown prints the plan as Markdown for a pull request; with
// diffBase, also what changed in the runbook's steps since that git ref.
func runPlanMarkdown(ctx context.Context, stdout, stderr io.Writer, path string, vars lang.VarSources, stateDir, diffBase string) error {
	return withPlan(ctx, stderr, path, vars, stateDir, func(rb *session.Runbook, p *lang.Plan) error {
		var d *view.PlanDiff
		if diffBase != "" {
			base, err := loadAtRef(rb.Config, diffBase)
			if err != nil {
				return withCode(exitError, err)
			}
			d = view.DiffConfigs(base, rb.Config, diffBase)
		}
		return view.WritePlanMarkdown(stdout, p, d)
	})
}

// loadAtRef loads the runbook's files as they are at git ref (`git show
// REF:./FILE` beside each file); nil when none of them existed there.
func loadAtRef(cfg *lang.Config, ref string) (*lang.Config, error) {
	if strings.HasPrefix(ref, "-") {
		return nil, fmt.Errorf("-diff-base %q is not a git ref", ref)
	}
	names := make([]string, 0, len(cfg.Sources))
	for n := range cfg.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	files := map[string][]byte{}
	for _, n := range names {
		cmd := exec.Command("git", "-C", filepath.Dir(n), "show", ref+":./"+filepath.Base(n))
		cmd.Env = safeenv.Environ()
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "exists on disk, but not in") {
				continue // a file added since ref
			}
			if ee, ok := err.(*exec.ExitError); ok {
				return nil, fmt.Errorf("git show %s:%s: %s", ref, n, strings.TrimSpace(string(ee.Stderr)))
			}
			return nil, fmt.Errorf("git show %s:%s: %w", ref, n, err)
		}
		files[n] = out
	}
	if len(files) == 0 {
		return nil, nil
	}
	base, diags := lang.LoadSources(files)
	if diags.HasErrors() {
		return nil, fmt.Errorf("the runbook at %s does not load: %s", ref, diags.Error())
	}
	return base, nil
}

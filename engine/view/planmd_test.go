package view_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/view"
)

func loadSrc(t *testing.T, src string) *lang.Config {
	t.Helper()
	cfg, d := lang.LoadSources(map[string][]byte{"main.hcl": []byte(src)})
	if d.HasErrors() {
		t.Fatal(d)
	}
	return cfg
}

const baseSrc = `
step "core.file" "a" {
  with     = { path = "/tmp/a", content = "1" }
  rollback = native
}
step "core.exec" "b" {
  with = { command = "true" }
}
step "core.noop" "gone" {
  with = {}
}
`

const headSrc = `
step "core.file" "a" {
  with       = { path    = "/tmp/a",  content = "2", mode = "0600" }
  rollback   = native
}
step "core.exec" "b" {
  with       = { command = "true" }
  depends_on = [step.a]
  timeout    = "1m"
}
step "core.exec" "new" {
  with = { command = "true" }
}
`

func TestDiffConfigs(t *testing.T) {
	d := view.DiffConfigs(loadSrc(t, baseSrc), loadSrc(t, headSrc), "main")
	want := &view.PlanDiff{Base: "main", Added: []string{"new"}, Removed: []string{"gone"}, Changed: []view.StepChange{
		{Step: "a", What: []string{"inputs: content, mode"}},
		{Step: "b", What: []string{"depends_on", "timeout"}},
	}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("diff (-want +got):\n%s", diff)
	}
	if d := view.DiffConfigs(nil, loadSrc(t, headSrc), "main"); len(d.Added) != 3 || len(d.Removed) != 0 {
		t.Errorf("against no base: %+v", d)
	}
}

func TestPlanMarkdown(t *testing.T) {
	cfg := loadSrc(t, `runbook "demo" {
  description = "A | demo"
}
`+headSrc)
	p, d := cfg.Plan(context.Background(), lang.PlanOptions{})
	if d.HasErrors() {
		t.Fatal(d)
	}
	var b strings.Builder
	if err := view.WritePlanMarkdown(&b, p, view.DiffConfigs(loadSrc(t, baseSrc), cfg, "origin/main")); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"## Runbook plan: `demo`",
		`A \| demo`,
		"| Level | Step | Action | After | On rollback | Notes |",
		"| 1 | `a` | `core.file` | — | reversible (native undo) | changed since `origin/main` |",
		"| 2 | `b` | `core.exec` | a | **irreversible** | changed since `origin/main`; timeout 1m0s |",
		"**point of no return**",
		"- Added: `new`",
		"- Removed: `gone`",
		"- Changed: `a` (inputs: content, mode)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

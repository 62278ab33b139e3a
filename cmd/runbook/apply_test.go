package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// TestApplyAutoApproveShowsPlan: apply -auto-approve prints the plan
// before running, like Terraform; with -json stdout holds only events.
func TestApplyAutoApproveShowsPlan(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	if err := os.WriteFile(main, []byte("step \"core.noop\" \"a\" {\n  with = { values = { x = 1 } }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rf := runFlags{parallelism: 1, stateDir: filepath.Join(dir, ".runbook")}
	var stdout, stderr bytes.Buffer
	if err := runApply(&stdout, &stderr, main, lang.VarSources{}, rf, true); langExitCode(err) != 0 {
		t.Fatalf("apply: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	plan, started := strings.Index(out, "Execution order"), strings.Index(out, " started")
	if plan < 0 || started < plan || !strings.Contains(out, `step "a" (core.noop)`) {
		t.Fatalf("apply -auto-approve did not print the plan before running:\n%s", out)
	}

	stdout.Reset()
	rf.json = true
	if err := runApply(&stdout, &stderr, main, lang.VarSources{}, rf, true); langExitCode(err) != 0 {
		t.Fatalf("apply -json: %v\n%s", err, stderr.String())
	}
	for sc := bufio.NewScanner(&stdout); sc.Scan(); {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("apply -auto-approve -json printed a line that is no JSON event: %q", sc.Text())
		}
	}
}

// countingProvider counts Plan calls.
type countingProvider struct {
	sdk.Provider
	plans *atomic.Int64
}

func (p countingProvider) Plan(ctx context.Context, action string, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	p.plans.Add(1)
	return p.Provider.Plan(ctx, action, req)
}

// TestPlanAsksOnlyPlanners: planning asks a plugin for its own plan only
// for actions that implement sdk.Planner (the schema says so): a runbook
// of noop steps makes no Plan call, so showing the plan on every apply
// costs no round trip per step.
func TestPlanAsksOnlyPlanners(t *testing.T) {
	var src strings.Builder
	for _, n := range []string{"a", "b", "c"} {
		src.WriteString("step \"core.noop\" \"" + n + "\" {\n}\n")
	}
	src.WriteString("step \"core.file\" \"f\" {\n  with = { path = \"x\", content = \"y\" }\n}\n")
	dir := t.TempDir()
	main := filepath.Join(dir, "main.hcl")
	if err := os.WriteFile(main, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := lang.Load(main)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var plans atomic.Int64
	_, diags = cfg.Plan(context.Background(), lang.PlanOptions{
		Schemas: builtinSchemas{},
		Provider: func(_ context.Context, name string) (sdk.Provider, error) {
			p, _ := builtin.Get(name)
			return countingProvider{sdk.Local(p), &plans}, nil
		},
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if n := plans.Load(); n != 1 {
		t.Fatalf("%d Plan calls, want 1 (core.file only)", n)
	}
}

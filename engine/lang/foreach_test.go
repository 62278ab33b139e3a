package lang

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// for_each = toset(LIST) is listed from LIST without building the set: the
// instances, their order and the errors are those of the set toset makes
// (reached through a local, which takes the general path).
func TestForEachTosetListedLikeTheSet(t *testing.T) {
	for _, list := range []string{
		`["b", "a", "c"]`,
		`["a", "a", "b", "a"]`,         // duplicates
		`["é", "e\u0301", "z"]`,        // the same string, normalized
		`[1, "a", true]`,               // converted to strings
		`[]`,                           // empty
		`["a", null]`,                  // a null element
		`["a", var.secret]`,            // a sensitive element
		`var.secrets`,                  // a sensitive list
		`["a", step.p.outputs.stdout]`, // an unknown element
		`{a = 1}`,                      // not a list
		`["a", ["b"]]`,                 // not strings
	} {
		t.Run(list, func(t *testing.T) {
			src := "variable \"secret\" {\n  sensitive = true\n}\nvariable \"secrets\" {\n  sensitive = true\n}\nstep \"core.exec\" \"p\" {\n  with = { command = \"x\" }\n}\n" +
				"locals {\n  s = toset(" + list + ")\n}\n" +
				"step \"core.exec\" \"direct\" {\n  for_each = toset(" + list + ")\n  with = { command = each.key }\n}\n" +
				"step \"core.exec\" \"viaset\" {\n  for_each = local.s\n  with = { command = each.key }\n}\n"
			cfg := mustLoadNoCheck(t, src)
			s := &Scope{Config: cfg, Vars: map[string]cty.Value{
				"secret":  cty.StringVal("b").Mark(MarkSensitive),
				"secrets": cty.TupleVal([]cty.Value{cty.StringVal("a")}).Mark(MarkSensitive),
			}}
			gotI, gotK, gotD := s.Expand(cfg.Steps["direct"])
			wantI, wantK, wantD := s.Expand(cfg.Steps["viaset"])
			if diff := cmp.Diff(instanceKeys(wantI), instanceKeys(gotI)); diff != "" || gotK != wantK {
				t.Errorf("known %v, want %v; instances (-set +toset):\n%s", gotK, wantK, diff)
			}
			if got, want := diagDetails(gotD), strings.ReplaceAll(diagDetails(wantD), `"viaset"`, `"direct"`); got != want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func instanceKeys(insts []Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, fmt.Sprintf("%#v=%#v", in.Key, in.Value))
	}
	return out
}

// diagDetails is what diags say, without where.
func diagDetails(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "%s: %s\n", d.Summary, d.Detail)
	}
	return b.String()
}

// A step's instances are evaluated in one context: its `with` using a
// local evaluated every local once per instance, so that plan was
// quadratic in a for_each over a local list (5,000 items: 103 s).
func TestForEachOverLocalsLinear(t *testing.T) {
	assertLinear(t, 200, func(t *testing.T, n int) {
		validateAndPlan(t, forEachSrc(n))
	})
}

// forEachSrc is a runbook with a for_each over n strings of a local list,
// whose `with` uses another local and the step before it.
func forEachSrc(n int) string {
	var b strings.Builder
	b.WriteString("locals {\n  prefix = \"p\"\n  items = [")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\"k%d\", ", i)
	}
	b.WriteString("]\n}\nstep \"core.exec\" \"first\" {\n  with = { command = \"echo\" }\n}\n")
	b.WriteString("step \"core.exec\" \"each\" {\n  for_each = toset(local.items)\n  when = each.key != \"\"\n" +
		"  with = { command = \"echo ${local.prefix} ${each.key} ${step.first.inputs.command}\" }\n}\n")
	b.WriteString("step \"core.exec\" \"after\" {\n  with = { command = \"echo ${length(step.each)}\" }\n}\n")
	return b.String()
}

// The goal is 100,000 items validated and planned in under 5 s
// (make bench measures that through the CLI); 20,000 here, with a bound
// generous enough for -race on a loaded machine, catch a quadratic part
// coming back (it took minutes).
func TestForEachLargeBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	src := forEachSrc(20000)
	const limit = 30 * time.Second
	done := make(chan time.Duration, 1)
	go func() { done <- timed(func() { validateAndPlan(t, src) }) }()
	select {
	case d := <-done:
		t.Logf("20,000 instances: %v", d)
		if d > limit {
			t.Errorf("validate and plan of 20,000 instances took %v, more than %v", d, limit)
		}
	case <-time.After(3 * limit):
		// Not waited for: a quadratic plan of this size takes many minutes.
		// (The bound is on CPU time; this one, on wall time, leaves room
		// for a busy machine.)
		t.Errorf("validate and plan of 20,000 instances not done in %v", 3*limit)
	}
}

// The plugins' own plans are asked for several at once: each lands on its
// own instance, errors included.
func TestPluginPlansOfManyInstances(t *testing.T) {
	var b strings.Builder
	b.WriteString("step \"core.noop\" \"each\" {\n  for_each = toset([")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "\"k%02d\", ", i)
	}
	b.WriteString("])\n  with = { values = each.key }\n}\n")
	cfg := mustLoad(t, b.String())
	for _, fail := range []bool{false, true} {
		p, diags := cfg.Plan(context.Background(), PlanOptions{Schemas: testSchemas,
			Provider: func(context.Context, string) (sdk.Provider, error) { return planProvider{fail: fail}, nil }})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		insts := p.Steps[0].Instances
		if len(insts) != 50 {
			t.Fatalf("%d instances", len(insts))
		}
		for i, in := range insts {
			key := fmt.Sprintf("k%02d", i)
			if want := fmt.Sprintf("each[%q]", key); in.Address != want {
				t.Errorf("instance %d is %s, want %s", i, in.Address, want)
			}
			got := in.PlanError
			if in.PluginPlan != nil {
				got = in.PluginPlan.Summary
			}
			if want := fmt.Sprintf("%q", key); !strings.Contains(got, want) || fail != (in.PlanError != "") {
				t.Errorf("%s: plugin plan %q (fail=%v), want one about %s", in.Address, got, fail, want)
			}
		}
	}
}

// A URL key's password is redacted in the instance's address, and each.key
// is sensitive; two keys that differ only in their password are refused,
// without the password in the message.
func TestForEachURLPasswordKeys(t *testing.T) {
	const pw = "canary-pw-99"
	src := "variable \"slaves\" {}\n" +
		"step \"core.exec\" \"sync\" {\n  for_each = toset(var.slaves)\n  with = { command = each.key }\n}\n"
	cfg := mustLoadNoCheck(t, src)
	s := &Scope{Config: cfg, Vars: map[string]cty.Value{"slaves": cty.TupleVal([]cty.Value{
		cty.StringVal("ssh://sync:" + pw + "@a.example/srv"), cty.StringVal("/srv/local"),
	})}}
	insts, known, diags := s.Expand(cfg.Steps["sync"])
	if diags.HasErrors() || !known {
		t.Fatalf("Expand: %v (known %v)", diags, known)
	}
	var addrs []string
	for _, in := range insts {
		addrs = append(addrs, Address("sync", in.Key))
	}
	if diff := cmp.Diff([]string{`sync["/srv/local"]`, `sync["ssh://sync:***@a.example/srv"]`}, addrs); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
	in, d := s.Inputs(cfg.Steps["sync"], insts[1])
	if d.HasErrors() {
		t.Fatal(d)
	}
	if cmd := in.GetAttr("command"); !cmd.HasMark(MarkSensitive) {
		t.Errorf("command = %#v, want each.key marked sensitive", cmd)
	}
	if cmd, _ := s.Inputs(cfg.Steps["sync"], insts[0]); cmd.GetAttr("command").HasMark(MarkSensitive) {
		t.Errorf("a key without a password is sensitive")
	}

	s.Vars["slaves"] = cty.TupleVal([]cty.Value{
		cty.StringVal("ssh://sync:" + pw + "@a.example/srv"), cty.StringVal("ssh://sync:other@a.example/srv"),
	})
	_, _, diags = s.Expand(cfg.Steps["sync"])
	if got := diagDetails(diags); !strings.Contains(got, `sync["ssh://sync:***@a.example/srv"]`) || strings.Contains(got, pw) {
		t.Errorf("colliding keys: diagnostics %q, want the redacted address and no password", got)
	}
}

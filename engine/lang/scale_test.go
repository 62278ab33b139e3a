package lang

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Work grows linearly with the size of a runbook. Each test times the same
// work on an input n and 10n large, and fails when the larger took more
// than 25 times as long (a quadratic part takes about 100 times): a ratio
// holds on a loaded machine, where absolute times do not. The time is the
// CPU time of the test process where it can be measured: on a busy machine
// a short run often finishes within its time slice and a long one never
// does, which skewed wall-time ratios past 25.

// bestOf is the shortest of runs timings of f.
func bestOf(runs int, f func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for i := 0; i < runs; i++ {
		if d := timed(f); d < best {
			best = d
		}
	}
	return best
}

// timed is the CPU time f took, or its wall time where CPU time is not
// measured.
func timed(f func()) time.Duration {
	runtime.GC() // not the garbage of earlier runs
	start := time.Now()
	cpu0, ok := cpuTime()
	f()
	if cpu1, ok2 := cpuTime(); ok && ok2 {
		return cpu1 - cpu0
	}
	return time.Since(start)
}

// assertLinear fails when work(10*n) takes more than 25 times work(n).
func assertLinear(t *testing.T, n int, work func(t *testing.T, n int)) {
	t.Helper()
	if testing.Short() {
		t.Skip("timing")
	}
	work(t, n) // warm up
	small := bestOf(3, func() { work(t, n) })
	large := bestOf(2, func() { work(t, 10*n) })
	t.Logf("n=%d: %v, n=%d: %v (%.1fx)", n, small, 10*n, large, float64(large)/float64(small))
	if large > 25*small {
		t.Errorf("10 times the input took %.0f times as long (%v, then %v): not linear", float64(large)/float64(small), small, large)
	}
}

// validateAndPlan loads, checks and plans src and renders the plan.
func validateAndPlan(t *testing.T, src string) {
	cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte(src)})
	diags = append(diags, cfg.Check(testSchemas)...)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, diags := cfg.Plan(context.Background(), PlanOptions{Schemas: testSchemas})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := p.WriteText(io.Discard); err != nil {
		t.Fatal(err)
	}
}

// A chain of steps, each using the previous one's inputs: building the
// evaluation context of every expression out of every step made plan
// quadratic (8,000 steps: 37 s).
func TestPlanLinearInSteps(t *testing.T) {
	assertLinear(t, 400, func(t *testing.T, n int) {
		var b strings.Builder
		b.WriteString("variable \"greeting\" {\n  default = \"hi\"\n}\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "step \"core.exec\" \"s%d\" {\n  with = { command = \"echo ${var.greeting} %d\" }\n", i, i)
			if i > 0 {
				fmt.Fprintf(&b, "  depends_on = [step.s%d]\n", i-1)
			}
			b.WriteString("}\n")
		}
		validateAndPlan(t, b.String())
	})
}

// for_each over toset(a list): cty unifies the list's element types with
// a quadratic sort (100,000 items: not done in two minutes).
func TestForEachLinearInItems(t *testing.T) {
	assertLinear(t, 1000, func(t *testing.T, n int) {
		var b strings.Builder
		b.WriteString("locals {\n  items = [")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "\"k%d\", ", i)
		}
		b.WriteString("]\n}\nstep \"core.exec\" \"each\" {\n  for_each = toset(local.items)\n  with = { command = \"echo ${each.key}\" }\n}\n")
		b.WriteString("step \"core.exec\" \"after\" {\n  with = { command = \"echo ${length(step.each)}\" }\n}\n")
		validateAndPlan(t, b.String())
	})
}

// The text of a value grows linearly with the value, however deep it is:
// a multi-line string indented with its value made a plan hundreds of
// times larger than the value.
func TestFormatValueLinear(t *testing.T) {
	for _, lines := range []int{10, 10000} {
		s := strings.Repeat("x\n", lines)
		for _, indent := range []int{0, 2, 200} {
			v := FormatValue(cty.StringVal(s), indent)
			if len(v) > 4*len(s)+300 {
				t.Errorf("%d lines at indent %d: %d bytes of text for a string of %d", lines, indent, len(v), len(s))
			}
		}
	}
	// Short multi-line strings near the top keep the heredoc form.
	if got, want := FormatValue(cty.StringVal("a\nb\n"), 2), "<<-EOT\n    a\n    b\n  EOT"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A long list given for a variable of a list type: cty unified the types
// of the list's elements with a quadratic sort, even when the variable's
// type says what they are (a 10 MB list took 34 s and 4 GB).
func TestVariableConversionLinear(t *testing.T) {
	for _, typ := range []string{"list(string)", "list(list(string))"} {
		t.Run(typ, func(t *testing.T) {
			cfg, diags := LoadSources(map[string][]byte{"main.hcl": []byte("variable \"v\" {\n  type = " + typ + "\n}\n")})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			assertLinear(t, 3000, func(t *testing.T, n int) {
				var b strings.Builder
				b.WriteString("v=[")
				if typ == "map(string)" {
					b.WriteString("{")
				}
				for i := 0; i < n; i++ {
					switch typ {
					case "map(string)":
						fmt.Fprintf(&b, "k%d = \"%d\", ", i, i)
					case "list(list(string))":
						fmt.Fprintf(&b, "[\"%d\"], ", i)
					default:
						fmt.Fprintf(&b, "\"%d\", ", i)
					}
				}
				if typ == "map(string)" {
					b.WriteString("}")
				}
				b.WriteString("]")
				arg := b.String()
				if typ == "map(string)" {
					arg = "v=" + arg[3:len(arg)-1]
				}
				vals, diags := cfg.ResolveVariables(VarSources{Args: []string{arg}})
				if diags.HasErrors() {
					t.Fatal(diags)
				}
				if got := vals["v"].LengthInt(); got != n {
					t.Fatalf("%d elements, want %d", got, n)
				}
			})
		})
	}
}

// Each instance of a for_each step reading local.items[each.key] walked and
// evaluated the whole local again: applying 4,000 instances over a
// 4,000-entry map took 76 s of CPU. A local that depends on no step is
// evaluated once per Scope.
func TestForEachLocalLookupLinear(t *testing.T) {
	assertLinear(t, 300, func(t *testing.T, n int) {
		var b strings.Builder
		b.WriteString("locals {\n  prefix = \"p\"\n  items = {\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "    k%d = \"%d\"\n", i, i)
		}
		b.WriteString("  }\n}\nstep \"core.exec\" \"each\" {\n  for_each = local.items\n  with = { command = \"${local.prefix} ${local.items[each.key]}\" }\n}\n")
		cfg := mustLoadNoCheck(t, b.String())
		s := &Scope{Config: cfg, RunID: "01RUN", Schemas: testSchemas}
		st := cfg.Steps["each"]
		insts, known, diags := s.Expand(st)
		if diags.HasErrors() || !known || len(insts) != n {
			t.Fatalf("Expand: %d instances, known %v, %v", len(insts), known, diags)
		}
		for _, in := range insts {
			v, diags := s.Inputs(st, in)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got, want := v.GetAttr("command").AsString(), "p "+strings.TrimPrefix(in.Key.AsString(), "k"); got != want {
				t.Fatalf("command = %q, want %q", got, want)
			}
		}
	})
}

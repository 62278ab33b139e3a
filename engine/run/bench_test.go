package run

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/plugins/core"
	"github.com/runbookdev/runbook/sdk"
)

func genRunbook(n int, chain bool) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if chain && i > 1 {
			fmt.Fprintf(&b, "step \"core.noop\" \"s%d\" {\n  depends_on = [step.s%d]\n}\n", i, i-1)
		} else {
			fmt.Fprintf(&b, "step \"core.noop\" \"s%d\" {\n}\n", i)
		}
	}
	return b.String()
}

func benchApply(b *testing.B, n int, chain bool) {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(genRunbook(n, chain))})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	provs := providers{"core": sdk.Local(core.New())}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store := journal.NewLocal(b.TempDir())
		store.NoSync = os.Getenv("BENCH_NOSYNC") != ""
		meta := &journal.Meta{Started: time.Now()}
		j, err := store.Create(meta)
		if err != nil {
			b.Fatal(err)
		}
		// Schemas as the CLI has them: inputs are converted to the action's
		// input type.
		sc := &lang.Scope{Config: cfg, Vars: nil, RunID: meta.ID, Schemas: coreSchemas}
		res, err := Apply(context.Background(), FromConfig(sc), Options{RunID: meta.ID, Providers: provs, Journal: j})
		j.Close()
		if err != nil || res.State != journal.RunSucceeded {
			b.Fatalf("%v %v", err, res)
		}
	}
}

// coreSchemas gives the core plugin's action schemas.
var coreSchemas = pluginSchemas{"core": sdk.SchemaOf(core.New())}

type pluginSchemas map[string]*sdk.PluginSchema

func (p pluginSchemas) ActionSchema(plugin, action string) (sdk.ActionSchema, bool, error) {
	s, ok := p[plugin]
	if !ok {
		return sdk.ActionSchema{}, false, fmt.Errorf("no plugin %q", plugin)
	}
	a, ok := s.Action(action)
	return a, ok, nil
}

func BenchmarkIndependent1000(b *testing.B) { benchApply(b, 1000, false) }
func BenchmarkChain200(b *testing.B)        { benchApply(b, 200, true) }

package run

import (
	"context"
	"testing"
	"time"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/sdk"
)

// TestKeepFinal: with KeepFinal, the record that ends a run (or its
// rollback) is handed back in Result.Final instead of being journaled;
// without it, it is journaled and Final is nil.
func TestKeepFinal(t *testing.T) {
	for _, keep := range []bool{false, true} {
		for _, failing := range []string{"", "c"} {
			w := newWorld()
			w.fail[failing] = failing != ""
			j := &memJournal{}
			cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(diamond)})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p := providers{"t": sdk.Local(&sdk.Plugin{Name: "t", Actions: []sdk.Action{&doAction{w}, &removeAction{w}}})}
			opts := Options{RunID: "run", Providers: p, Journal: j, KeepFinal: keep, Sleep: func(context.Context, time.Duration) error { return nil }}
			res, err := Apply(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: "run"}), opts)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, res *Result) {
				t.Helper()
				var ends []string
				for _, r := range j.recs {
					if r.Type == journal.RecRunState && r.State != journal.RunRollingBack {
						ends = append(ends, r.State)
					}
				}
				switch {
				case keep && (res.Final == nil || res.Final.Type != journal.RecRunState || res.Final.State != res.State || len(ends) != 0):
					t.Errorf("keep, %s failing %q: Final %+v, journaled ends %v; want Final %s, none journaled", what, failing, res.Final, ends, res.State)
				case !keep && (res.Final != nil || len(ends) != 1 || ends[0] != res.State):
					t.Errorf("%s failing %q: Final %+v, journaled ends %v; want %s journaled", what, failing, res.Final, ends, res.State)
				}
			}
			check("apply", res)
			if failing != "" {
				continue
			}
			// Its rollback, from the journal.
			st := journal.Replay(append([]*journal.Record{{Type: journal.RecRunStarted, Meta: &journal.Meta{ID: "run"}}}, j.recs...))
			j.recs = nil
			res, err = Rollback(context.Background(), FromConfig(&lang.Scope{Config: cfg, RunID: "run"}), opts, st)
			if err != nil || res.State != journal.RunRolledBack {
				t.Fatalf("rollback: %v, %v", res, err)
			}
			check("rollback", res)
		}
	}
}

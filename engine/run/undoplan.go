package run

import (
	"context"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/sdk"
)

// UndoPreview is what a rollback action's plugin says its undo of one
// instance will do (sdk Plan), or why it could not say.
type UndoPreview struct {
	Plan  *sdk.PlanResult // masked
	Error string          // masked
}

// PreviewUndos asks, for each instance of the journaled run that needs an
// undo through a rollback block whose action supports Plan, what that
// undo will do, with the inputs the undo would get. It changes nothing:
// no journal record, no event (opts.Sink is not used). Native undos and
// actions without Plan are left out. rb is the runbook the run was made
// from, as for Rollback.
func PreviewUndos(ctx context.Context, rb *Runbook, opts Options, state *journal.State) (map[string]*UndoPreview, error) {
	opts.Resume, opts.Sink, opts.Journal = nil, event.Discard, nil
	e, err := newExecutor(ctx, rb, opts)
	if err != nil {
		return nil, err
	}
	defer close(e.quit)
	if err := e.loadInstances(state); err != nil {
		return nil, err
	}
	out := map[string]*UndoPreview{}
	for _, n := range e.nodes {
		r := n.st.Rollback
		if r == nil || r.Native {
			continue
		}
		prov := e.provs[r.Plugin]
		s, err := prov.Schema(ctx)
		if err != nil {
			return nil, err
		}
		if as, ok := s.Action(r.Action); !ok || !as.Capabilities.SupportsPlan {
			continue
		}
		for _, in := range n.insts {
			if !needsUndo(in) {
				continue
			}
			v, err := e.undoInputs(n, in)
			if err != nil {
				out[in.Address] = &UndoPreview{Error: e.maskErr(err)}
				continue
			}
			plain, _ := v.UnmarkDeep()
			res, err := prov.Plan(ctx, r.Action, &sdk.PlanRequest{Inputs: plain})
			switch {
			case err != nil:
				out[in.Address] = &UndoPreview{Error: e.maskErr(err)}
			case res != nil:
				p := &sdk.PlanResult{Summary: e.mask.Mask(res.Summary), Counts: res.Counts}
				for _, w := range res.Warnings {
					p.Warnings = append(p.Warnings, e.mask.Mask(w))
				}
				for _, d := range res.Details {
					p.Details = append(p.Details, e.mask.Mask(d))
				}
				out[in.Address] = &UndoPreview{Plan: p}
			}
		}
	}
	return out, nil
}

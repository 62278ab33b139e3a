package session

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
)

// UndoPlan is what a rollback of a run will do, computed from its journal
// and its runbook without undoing anything.
type UndoPlan struct {
	RunID   string
	Runbook string // the runbook block's name, "" when none
	Dir     string // the runbook's directory
	State   string // the run's journaled state
	// Picked: the run was not named; it is the latest run of the runbook
	// in the working directory when Here, else of the state directory
	// (the working directory holds no runbook).
	Picked, Here bool
	// Levels are the undos in the executor's order (graph.Undo of the step
	// graph over the steps that need an undo): every undo of a level
	// finishes before the next level starts; those of one level run in
	// parallel.
	Levels [][]*PlannedUndo
	// Irreversible are the instances that completed and declare no undo:
	// a rollback reports them and leaves what they did.
	Irreversible []string
}

// PlannedUndo is the undo of one step instance.
type PlannedUndo struct {
	Address string
	State   string // the instance's journaled state (succeeded, failed, undo_failed...)
	// Undo is "native undo" or "rollback: PLUGIN.ACTION".
	Undo string
	// Preview is what the rollback action's plugin says the undo will do,
	// nil for a native undo or an action that does not plan.
	Preview *run.UndoPreview
}

// Len is the number of undos planned.
func (p *UndoPlan) Len() int {
	n := 0
	for _, l := range p.Levels {
		n += len(l)
	}
	return n
}

// undoPlan computes the undo plan of a reopened run; with preview, it asks
// the plugins of rollback actions that support it what each undo will do.
func (s *Session) undoPlan(ctx context.Context, o *reopened, preview bool) (*UndoPlan, error) {
	cfg, st := o.rb.Config, o.state
	p := &UndoPlan{RunID: st.Meta.ID, Runbook: st.Meta.Runbook, Dir: st.Meta.Dir, State: st.State}
	byStep := map[string][]*journal.StepState{}
	for _, addr := range st.Order {
		name := addr
		if i := strings.IndexByte(addr, '['); i >= 0 {
			name = addr[:i]
		}
		byStep[name] = append(byStep[name], st.Steps[addr])
	}
	var previews map[string]*run.UndoPreview
	if preview {
		var err error
		previews, err = run.PreviewUndos(ctx, run.FromConfig(o.rb.scope(p.RunID)), run.Options{RunID: p.RunID,
			Parallelism: s.opts.Parallelism, Providers: o.rb.Host, Sealer: o.sealer, Mask: s.mask}, st)
		if err != nil {
			return nil, err
		}
	}
	g := cfg.Graph()
	levels, err := g.Undo(func(name string) bool { return cfg.Steps[name].Rollback != nil }).Levels()
	if err != nil {
		return nil, err
	}
	for _, level := range levels {
		var l []*PlannedUndo
		for _, name := range level {
			step := cfg.Steps[name]
			for _, js := range byStep[name] {
				if run.NeedsUndo(step, js) {
					l = append(l, &PlannedUndo{Address: js.Address, State: js.State, Undo: undoKind(step.Rollback), Preview: previews[js.Address]})
				}
			}
		}
		if len(l) > 0 {
			p.Levels = append(p.Levels, l)
		}
	}
	order, err := g.TopoSort()
	if err != nil {
		return nil, err
	}
	schemas := Schemas{o.rb.Host}
	for _, name := range order {
		step := cfg.Steps[name]
		if step.Rollback != nil {
			continue
		}
		if sc, ok, err := schemas.ActionSchema(step.Plugin, step.Action); err == nil && ok && sc.Capabilities.ReadOnly {
			continue
		}
		for _, js := range byStep[name] {
			if in, _, err := js.Inputs.Decode(nil); err == nil && lang.DeclaresReadOnly(in) {
				continue
			}
			if js.State == journal.StepSucceeded {
				p.Irreversible = append(p.Irreversible, js.Address)
			}
		}
	}
	return p, nil
}

func undoKind(r *lang.Rollback) string {
	if r.Native {
		return "native undo"
	}
	return "rollback: " + r.Plugin + "." + r.Action
}

// runOfWorkdir says whether a run was made from the runbook in the
// working directory; ok is false when the working directory holds no
// runbook (then any run matches).
func runOfWorkdir() (match func(*journal.Meta) bool, ok bool) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, false
	}
	ents, err := os.ReadDir(wd)
	if err != nil {
		return nil, false
	}
	found := false
	for _, e := range ents {
		if !e.IsDir() && lang.IsRunbookFile(e.Name()) {
			found = true
			break
		}
	}
	if !found {
		return nil, false
	}
	wd = realDir(wd)
	return func(m *journal.Meta) bool {
		if m.Dir != "" && realDir(m.Dir) == wd {
			return true
		}
		for _, f := range m.Files {
			if realDir(filepath.Dir(f.Path)) == wd {
				return true
			}
		}
		return false
	}, true
}

// realDir is dir absolute with its symbolic links resolved, as far as it
// exists.
func realDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		dir = r
	}
	return dir
}

// latestRunHere is the newest run of the runbook in the working directory
// (here), or of the state directory when the working directory holds no
// runbook.
func latestRunHere(store store, where string) (id string, here bool, err error) {
	match, ok := runOfWorkdir()
	if !ok {
		id, err := latestRun(store, where, false)
		return id, false, err
	}
	ofHere := func(st *journal.State) bool { return st.Meta != nil && match(st.Meta) }
	wd, _ := os.Getwd()
	var f journal.RunFilter
	if _, ok := store.(journal.RunLister); ok {
		// With a database, a query finds the newest run of the runbook's
		// name; only the runs newer than it are then read (one of them
		// may be of this directory under another name).
		if cfg, diags := lang.Load(wd); !diags.HasErrors() && cfg.Runbook != nil && cfg.Runbook.Name != "" {
			if f.After, err = firstRun(store, journal.RunFilter{Runbook: cfg.Runbook.Name}, ofHere); err != nil {
				return "", false, err
			}
		}
	}
	id, err = firstRun(store, f, ofHere)
	if id == "" && err == nil && f.After != "" {
		id = f.After
	}
	if id != "" || err != nil {
		return id, id != "", err
	}
	return "", false, fmt.Errorf("no run of the runbook in %s in %s: name the RUN (see `runbook runs`)", wd, strings.TrimSuffix(where, string(filepath.Separator)))
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
)

func init() {
	var vf varFlags
	var rf runFlags
	cmd := &cobra.Command{
		Use:   "resume [RUN]",
		Short: "Continue an interrupted run where it stopped",
		Long: `Resume continues a run that was interrupted (Ctrl-C, a crash, on_failure = "abort").
Completed steps keep their journaled outputs; a step that was in flight is applied
again with the same idempotency key and its last checkpoint. Without RUN, the
latest unfinished run in the state directory is resumed. Sensitive variables that
were not stored (no RUNBOOK_STATE_KEY) are asked for again (-var, RUNBOOK_VAR_x or
a prompt).

Exit status: as for apply.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return runResume(cmd.OutOrStdout(), cmd.ErrOrStderr(), id, vf.sources(), rf)
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	rootCmd.AddCommand(cmd)
}

// loaded is a journaled run with its runbook loaded again.
type loaded struct {
	state *journal.State
	cfg   *lang.Config
	scope *lang.Scope
	j     journal.Journal
}

// openRun resolves RUN (or the latest unfinished one), takes its lock,
// reopens its journal and loads its runbook and variables.
func (s *session) openRun(id string, vars lang.VarSources, latestUnfinished bool) (*loaded, error) {
	dir := s.flags.stateDir
	if dir == "" {
		dir = ".runbook"
	}
	s.store = journal.NewLocal(dir)
	var err error
	if id == "" {
		if id, err = latestRun(s.store, latestUnfinished); err != nil {
			return nil, err
		}
	} else if id, err = s.store.Resolve(id); err != nil {
		return nil, err
	}
	if err := s.lockRun(id); err != nil {
		return nil, err
	}
	st, err := s.store.Load(id)
	if err != nil {
		s.releaseLock(false)
		return nil, err
	}
	if st.Meta.Lock != "" {
		l, err := s.store.Lock(st.Meta.Lock, id, holder())
		if err != nil {
			s.releaseLock(false)
			return nil, err
		}
		s.lock = l
	}
	j, st, err := s.store.Open(id)
	if err != nil {
		s.releaseLock(false)
		return nil, err
	}
	if st.Warning != "" {
		fmt.Fprintln(s.stderr, "Warning:", st.Warning)
	}
	var paths []string
	for _, f := range st.Meta.Files {
		paths = append(paths, f.Path)
		if b, err := os.ReadFile(f.Path); err == nil {
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != f.SHA256 {
				fmt.Fprintf(s.stderr, "Warning: %s changed since the run started.\n", f.Path)
			}
		}
	}
	if len(paths) == 0 {
		j.Close()
		s.releaseLock(false)
		return nil, errors.New("the journal names no runbook file")
	}
	cfg, diags := lang.Load(paths...)
	if diags.HasErrors() {
		printDiags(s.stderr, cfg, diags)
		j.Close()
		s.releaseLock(false)
		return nil, errors.New("cannot load the runbook of this run")
	}
	if s.host, err = openHost(cfg, dir, s.stderrW); err != nil {
		j.Close()
		s.releaseLock(false)
		return nil, err
	}
	// Journaled variable values come first; what was not stored (sensitive
	// values without a key) comes from -var, the environment or a prompt.
	var args []string
	for name, jv := range st.Meta.Vars {
		v, complete, err := jv.Decode(s.sealer)
		if err != nil {
			j.Close()
			s.releaseLock(false)
			return nil, fmt.Errorf("variable %s: %w", name, err)
		}
		if !complete {
			continue
		}
		args = append(args, name+"="+varArg(v))
	}
	vars.Args = append(args, vars.Args...)
	values, diags := cfg.ResolveVariables(vars)
	if diags.HasErrors() {
		printDiags(s.stderr, cfg, diags)
		j.Close()
		s.releaseLock(false)
		return nil, errors.New("variables of this run are missing")
	}
	for _, v := range values {
		s.mask.AddValue(v, lang.MarkSensitive)
	}
	scope := &lang.Scope{Config: cfg, Vars: values, RunID: id, Schemas: hostSchemas{s.host}}
	return &loaded{state: st, cfg: cfg, scope: scope, j: j}, nil
}

// varArg writes a value as a -var argument: raw for strings, HCL otherwise.
func varArg(v cty.Value) string {
	v, _ = v.UnmarkDeep()
	if v.Type() == cty.String && !v.IsNull() {
		return v.AsString()
	}
	return string(hclwrite.TokensForValue(v).Bytes())
}

func latestRun(store *journal.LocalStore, unfinished bool) (string, error) {
	ids, err := store.List()
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		st, err := store.Load(id)
		if err != nil {
			continue
		}
		if !unfinished || st.Unfinished() {
			return id, nil
		}
	}
	if unfinished {
		return "", fmt.Errorf("no unfinished run in %s", store.Dir)
	}
	return "", fmt.Errorf("no run in %s", store.Dir)
}

func runResume(stdout, stderr io.Writer, id string, vars lang.VarSources, rf runFlags) error {
	s, err := newSession(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.close()
	l, err := s.openRun(id, vars, true)
	if err != nil {
		return s.fail(exitError, err)
	}
	defer l.j.Close()
	switch l.state.State {
	case journal.RunSucceeded, journal.RunRolledBack:
		s.releaseLock(true)
		return s.fail(exitError, fmt.Errorf("run %s is %s: nothing to resume", l.state.Meta.ID, l.state.State))
	case journal.RunRollingBack, journal.RunRollbackFailed:
		s.releaseLock(false)
		return s.fail(exitError, fmt.Errorf("run %s was rolling back: finish that with %s", l.state.Meta.ID, s.commands(l.state.Meta.ID).rollback))
	}
	h := holder()
	if err := l.j.Append(&journal.Record{Type: journal.RecRunResumed, Meta: &journal.Meta{ID: l.state.Meta.ID, User: h.User, Host: h.Host, PID: h.PID}}); err != nil {
		s.releaseLock(false)
		return s.fail(exitError, err)
	}
	return s.execute(l.j, l.cfg, l.scope, l.state.Meta.ID, l.state)
}

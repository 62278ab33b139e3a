package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/pluginhost"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
	"github.com/runbookdev/runbook/sdk"
)

// runFlags are shared by apply, resume and rollback.
type runFlags struct {
	parallelism int
	json        bool
	stateDir    string
	verbose     bool
}

func addRunFlags(cmd *cobra.Command, f *runFlags) {
	cmd.Flags().IntVar(&f.parallelism, "parallelism", 10, "run at most N steps at once")
	cmd.Flags().BoolVar(&f.json, "json", false, "print one JSON event per line (see docs/events.md)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "where runs are journaled (default: .runbook beside the runbook, or in the current directory)")
	cmd.Flags().BoolVar(&f.verbose, "verbose", false, "also show plugin debug logs and checkpoints")
}

func init() {
	var vf varFlags
	var rf runFlags
	var autoApprove bool
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Run a runbook, undoing what was done if a step fails",
		Long: `Apply shows the plan, asks for confirmation on a terminal (unless -auto-approve),
then runs the steps as a DAG. When a step fails (after its retries) with
on_failure = "rollback" (the default), nothing new starts, running steps finish,
always steps run, and every completed step with a rollback is undone in reverse
dependency order. Every state change is journaled under .runbook/runs/<id>/.

Ctrl-C once stops cleanly and leaves the run resumable; twice exits at once.

Exit status: 0 success, 1 error or failed run, 2 failed and rolled back,
3 rollback failed, 4 interrupted (resumable).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], vf.sources(), rf, autoApprove)
		},
	}
	addVarFlags(cmd, &vf)
	addRunFlags(cmd, &rf)
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "do not ask for confirmation")
	rootCmd.AddCommand(cmd)
}

// session is what apply, resume and rollback share: the masker, the views,
// the plugin host, the store and the lock.
type session struct {
	stdout, stderr io.Writer
	mask           *mask.Masker
	sink           event.Sink
	flags          runFlags
	store          *journal.LocalStore
	sealer         *journal.Sealer
	host           *pluginhost.Host
	stderrW        *mask.Writer // plugin stderr, masked
	lock           journal.Lock // the runbook's lock key, if any
	runLock        journal.Lock // the run itself: one process per run
	live           *view.Live   // the terminal view, nil when not on a terminal
	// out carries the plain or JSON events to stdout (nil with the live
	// view); flushOut before writing to stdout directly.
	out *view.AsyncWriter
}

// flushOut writes out the events queued for stdout.
func (s *session) flushOut() {
	if s.out != nil {
		s.out.Flush()
	}
}

func newSession(stdout, stderr io.Writer, rf runFlags) (*session, error) {
	s := &session{stdout: stdout, stderr: stderr, mask: mask.New(), flags: rf}
	sealer, err := journal.SealerFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	s.sealer = sealer
	if f, ok := stdout.(*os.File); ok && !rf.json && term.IsTerminal(int(f.Fd())) {
		w, _, _ := term.GetSize(int(f.Fd()))
		s.live = view.NewLive(stdout, s.mask, w, os.Getenv("NO_COLOR") == "")
		s.sink = s.live
	} else if rf.json {
		s.out = view.NewAsyncWriter(stdout)
		s.sink = view.JSON(s.out, s.mask)
	} else {
		s.out = view.NewAsyncWriter(stdout)
		p := view.NewPlain(s.out, s.mask)
		p.Verbose = rf.verbose
		s.sink = p
	}
	s.stderrW = s.mask.Writer(stderr)
	return s, nil
}

func (s *session) close() {
	if s.live != nil {
		s.live.Close()
	}
	if s.host != nil {
		// Every call has returned: the plugins need only be told to exit,
		// not waited for (that wait is a few milliseconds at the end of
		// every command).
		s.host.CloseNoWait()
	}
	s.flushOut()
	s.stderrW.Flush()
}

// errorf prints a masked error and returns the exit code error.
func (s *session) fail(code int, err error) error {
	if err == nil {
		return withCode(code, nil)
	}
	s.flushOut()
	fmt.Fprintln(s.stderr, "Error:", s.mask.Mask(err.Error()))
	return withCode(code, nil)
}

// interruptContext cancels on the first SIGINT/SIGTERM and exits on the
// second.
func interruptContext(s *session, hint func() string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			n++
			if n == 1 {
				fmt.Fprintln(s.stderr, "\nInterrupt received: stopping running steps; the run stays resumable. Press Ctrl-C again to exit now.")
				cancel()
				continue
			}
			s.flushOut()
			fmt.Fprintln(s.stderr, "\nSecond interrupt: exiting now. "+hint())
			os.Exit(exitInterrupted)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func stateDirFor(rf runFlags, cfg *lang.Config) string {
	if rf.stateDir != "" {
		return rf.stateDir
	}
	if cfg != nil {
		return filepath.Join(runbookDir(cfg), ".runbook")
	}
	return ".runbook"
}

func holder() journal.Holder {
	h := journal.Holder{PID: os.Getpid(), Since: time.Now().UTC()}
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	h.Host, _ = os.Hostname()
	return h
}

func runApply(stdout, stderr io.Writer, path string, vars lang.VarSources, rf runFlags, autoApprove bool) error {
	if p := os.Getenv("RUNBOOK_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	s, err := newSession(stdout, stderr, rf)
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.close()
	// Start the builtin plugins the runbook most likely uses while it is
	// parsed; the guess is checked against the parsed runbook below.
	early, earlyDir := prestartGuess(path, rf, s.stderrW)
	if early != nil {
		s.host = early
	}
	// The git commit is run metadata: ask git while the runbook is parsed
	// (a runbook file's directory is its base; checked below).
	gitDir := filepath.Dir(path)
	git := gitLater(gitDir)
	cfg, diags := lang.Load(path)
	if diags.HasErrors() {
		printDiags(stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	stateDir := stateDirFor(rf, cfg)
	s.store = journal.NewLocal(stateDir)
	if early != nil && earlyDir == runbookDir(cfg) && len(pluginSources(cfg, earlyDir)) == 0 &&
		stateDir == stateDirFor(rf, &lang.Config{BaseDir: earlyDir}) {
		// The early host was set up exactly as openHost would: keep it,
		// and start what the guess missed.
		s.host.Prestart(context.Background(), usedPlugins(cfg)...)
	} else {
		if early != nil {
			early.Close()
			s.host = nil
		}
		if s.host, err = openHost(cfg, stateDir, s.stderrW); err != nil {
			return s.fail(exitError, err)
		}
	}
	if runbookDir(cfg) != gitDir {
		git = gitLater(runbookDir(cfg))
	}
	diags = append(diags, cfg.Check(hostSchemas{s.host})...)
	values, d := cfg.ResolveVariables(vars)
	diags = append(diags, d...)
	for _, v := range values {
		s.mask.AddValue(v, lang.MarkSensitive)
	}
	if diags.HasErrors() {
		printDiags(stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	runID := journal.NewID()
	scope := &lang.Scope{Config: cfg, Vars: values, RunID: runID, Schemas: hostSchemas{s.host}}
	lockKey, d := scope.Lock()
	if d.HasErrors() {
		printDiags(stderr, cfg, d)
		return withCode(exitError, nil)
	}
	if !autoApprove {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return s.fail(exitError, errors.New("stdin is not a terminal: pass -auto-approve to apply without confirmation"))
		}
		ok, err := confirmPlan(s, cfg, values)
		if err != nil {
			return s.fail(exitError, err)
		}
		if !ok {
			fmt.Fprintln(stderr, "Apply cancelled.")
			return withCode(exitError, nil)
		}
	}
	if lockKey != "" {
		l, err := s.store.Lock(lockKey, runID, holder())
		if err != nil {
			return s.fail(exitError, err)
		}
		s.lock = l
	}
	if err := s.lockRun(runID); err != nil {
		s.releaseLock(false)
		return s.fail(exitError, err)
	}
	meta := runMeta(s, cfg, runID, lockKey, values, git)
	j, err := s.store.Create(meta)
	if err != nil {
		s.releaseLock(false)
		return s.fail(exitError, fmt.Errorf("create journal: %w", err))
	}
	defer j.Close()
	return s.execute(j, cfg, scope, runID, nil)
}

func (s *session) releaseLock(finished bool) {
	if s.lock != nil {
		s.lock.Release(finished)
		s.lock = nil
	}
	if s.runLock != nil {
		s.runLock.Release(true)
		s.runLock = nil
	}
}

// lockRun makes sure no other process works on the run at the same time.
func (s *session) lockRun(runID string) error {
	l, err := s.store.Lock("run:"+runID, runID, holder())
	if err != nil {
		var le *journal.LockedError
		if errors.As(err, &le) && le.Live {
			return fmt.Errorf("run %s is being worked on by another process: %s", runID, le.Holder)
		}
		return err
	}
	s.runLock = l
	return nil
}

// execute runs (or resumes) and prints the summary.
func (s *session) execute(j journal.Journal, cfg *lang.Config, scope *lang.Scope, runID string, resume *journal.State) error {
	cmds := s.commands(runID)
	ctx, stop := interruptContext(s, func() string { return "Resume with: " + cmds.resume })
	defer stop()
	name := ""
	if cfg.Runbook != nil {
		name = cfg.Runbook.Name
	}
	s.sink.Emit(event.Event{V: event.Version, Type: event.RunStarted, Time: time.Now().UTC(), RunID: runID, Message: name,
		Fields: map[string]string{"journal": s.store.Location(runID)}})
	res, err := run.Apply(ctx, run.FromConfig(scope), run.Options{
		RunID: runID, Parallelism: s.flags.parallelism, Providers: s.host, Journal: j, Sealer: s.sealer,
		Sink: s.sink, Mask: s.mask, Resume: resume,
	})
	if err != nil {
		s.releaseLock(false)
		return s.fail(exitError, err)
	}
	s.releaseLock(journal.Finished(res.State))
	return s.finish(res, runID)
}

type commands struct{ resume, rollback string }

func (s *session) commands(runID string) commands {
	dir := ""
	if s.flags.stateDir != "" {
		dir = " -state-dir " + s.flags.stateDir
	} else if s.store != nil && s.store.Dir != ".runbook" {
		dir = " -state-dir " + s.store.Dir
	}
	return commands{resume: "runbook resume" + dir + " " + runID, rollback: "runbook rollback" + dir + " " + runID}
}

// finish prints the summary (or the run_finished event) and picks the
// exit code.
func (s *session) finish(res *run.Result, runID string) error {
	cmds := s.commands(runID)
	sum := &view.Summary{RunID: runID, State: res.State, Journal: s.store.Location(runID), Duration: res.Duration}
	for _, in := range res.Instances {
		line := view.StepLine{Address: in.Address, State: in.State, Attempts: in.Attempt}
		if !in.Ended.IsZero() && !in.Started.IsZero() {
			line.Duration = in.Ended.Sub(in.Started)
		}
		if se, ok := in.Err.(*run.StepError); ok {
			line.Error = se.Msg
			if se.Kind != "" {
				line.Error = string(se.Kind) + ": " + se.Msg
			}
		} else if in.Err != nil {
			line.Error = in.Err.Error()
		}
		sum.Steps = append(sum.Steps, line)
	}
	if res.Err != nil {
		sum.Error = res.Err.Error()
	}
	if len(res.Outputs) > 0 {
		sum.Outputs = map[string]any{}
		for k, v := range res.Outputs {
			sum.Outputs[k] = run.RenderValue(v)
		}
	}
	code := exitOK
	switch res.State {
	case journal.RunSucceeded:
		sum.Rollback = cmds.rollback
	case journal.RunRolledBack:
		code = exitRolledBack
	case journal.RunRollbackFailed:
		code = exitRollbackFailed
		sum.Rollback = cmds.rollback
	case journal.RunInterrupted, journal.RunAborted:
		code = exitInterrupted
		if res.State == journal.RunAborted {
			code = exitError
		}
		sum.Resume, sum.Rollback = cmds.resume, cmds.rollback
	default:
		code = exitError
		sum.Resume, sum.Rollback = cmds.resume, cmds.rollback
	}
	if res.Interrupted && code != exitInterrupted {
		code = exitInterrupted
	}
	if s.flags.json {
		s.sink.Emit(event.Event{V: event.Version, Type: event.RunFinished, Time: time.Now().UTC(), RunID: runID, State: res.State,
			Error: s.mask.Mask(sum.Error), Outputs: sum.Outputs, DurationMS: res.Duration.Milliseconds(),
			Fields: map[string]string{"journal": sum.Journal, "resume": sum.Resume, "rollback": sum.Rollback}})
	} else {
		if s.live != nil {
			s.live.Close()
		}
		s.flushOut()
		view.WriteSummary(s.stdout, s.mask, sum)
	}
	return withCode(code, nil)
}

// confirmPlan prints the plan and asks "yes".
func confirmPlan(s *session, cfg *lang.Config, values map[string]cty.Value) (bool, error) {
	p, d := cfg.Plan(context.Background(), lang.PlanOptions{
		Vars: values, Schemas: hostSchemas{s.host},
		Provider: func(ctx context.Context, name string) (sdk.Provider, error) { return s.host.Provider(ctx, name) },
	})
	if d.HasErrors() || p == nil {
		printDiags(s.stderr, cfg, d)
		return false, errors.New("cannot plan")
	}
	s.flushOut()
	mw := s.mask.Writer(s.stdout)
	p.WriteText(mw)
	mw.Flush()
	fmt.Fprint(s.stderr, "\nApply this runbook? Only 'yes' is accepted: ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	return strings.TrimSpace(line) == "yes", nil
}

// runMeta describes the run for the journal.
func runMeta(s *session, cfg *lang.Config, runID, lockKey string, values map[string]cty.Value, git func() *journal.GitInfo) *journal.Meta {
	h := holder()
	m := &journal.Meta{ID: runID, User: h.User, Host: h.Host, PID: h.PID, Started: time.Now().UTC(), Lock: lockKey,
		Parallelism: s.flags.parallelism, Command: s.mask.Mask(strings.Join(os.Args, " "))}
	if cfg.Runbook != nil {
		m.Runbook = cfg.Runbook.Name
	}
	dir, _ := filepath.Abs(runbookDir(cfg))
	m.Dir = dir
	names := make([]string, 0, len(cfg.Sources))
	for n := range cfg.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum := sha256.Sum256(cfg.Sources[n])
		abs, err := filepath.Abs(n)
		if err != nil {
			abs = n
		}
		m.Files = append(m.Files, journal.FileHash{Path: abs, SHA256: hex.EncodeToString(sum[:])})
	}
	m.Git = git()
	plugins := map[string]bool{}
	for _, st := range cfg.Steps {
		plugins[st.Plugin] = true
		if st.Rollback != nil && st.Rollback.Plugin != "" {
			plugins[st.Rollback.Plugin] = true
		}
	}
	for _, p := range sortedKeys(plugins) {
		v, sum := s.host.Info(p)
		m.Plugins = append(m.Plugins, journal.PluginInfo{Name: p, Version: v, SHA256: sum})
	}
	m.Vars = map[string]*journal.Value{}
	for k, v := range values {
		if jv, err := journal.EncodeValue(v, s.sealer); err == nil {
			m.Vars[k] = jv
		}
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// gitInfo returns the commit of the repository holding dir, if any.
// gitLater starts asking git about dir and returns what waits for the
// answer (once; later calls return the same).
func gitLater(dir string) func() *journal.GitInfo {
	ch := make(chan *journal.GitInfo, 1)
	go func() {
		abs, _ := filepath.Abs(dir)
		ch <- gitInfo(abs)
	}()
	return sync.OnceValue(func() *journal.GitInfo { return <-ch })
}

// gitInfo is the commit checked out in dir and whether tracked files
// differ from it (nil outside a repository or before the first commit).
// One git process answers both.
func gitInfo(dir string) *journal.GitInfo {
	out, err := exec.Command("git", "-C", dir, "status", "--porcelain=v2", "--branch", "--untracked-files=no").Output()
	if err != nil {
		return nil
	}
	var g journal.GitInfo
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "# branch.oid "):
			g.Commit = strings.TrimPrefix(line, "# branch.oid ")
		case strings.HasPrefix(line, "#"):
		default:
			g.Dirty = true
		}
	}
	if g.Commit == "" || g.Commit == "(initial)" {
		return nil
	}
	return &g
}

// guessPlugins scans native syntax line by line for step block headers
// (`step "PLUGIN.ACTION" ...`) and returns the plugins they name, and
// whether a line may start a plugin block (which may point a plugin at
// another executable: then nothing should be guessed). It is a guess made
// before parsing, so it only has to be cheap and never miss a plugin block;
// on a runbook of 1,000 steps it takes microseconds where a regexp took
// milliseconds.
func guessPlugins(b []byte) (names []string, pluginBlock bool) {
	seen := map[string]bool{}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimLeft(line, " \t\r\f")
		if rest, ok := bytes.CutPrefix(line, []byte("plugin")); ok && (len(rest) == 0 || !isWordByte(rest[0])) {
			return nil, true
		}
		rest, ok := bytes.CutPrefix(line, []byte("step"))
		if !ok || len(rest) == 0 || !isSpace(rest[0]) {
			continue
		}
		rest = bytes.TrimLeft(rest, " \t\r\f")
		if len(rest) == 0 || rest[0] != '"' {
			continue
		}
		rest = rest[1:]
		n := 0
		for n < len(rest) && (isWordByte(rest[n]) || rest[n] == '-') {
			n++
		}
		if n > 0 && n < len(rest) && rest[n] == '.' && !seen[string(rest[:n])] {
			seen[string(rest[:n])] = true
			names = append(names, string(rest[:n]))
		}
	}
	return names, false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' }

// prestartGuess starts, before the runbook is parsed, the builtin plugins
// its step headers name, in a host set up as openHost will set it up for
// that runbook (same directory, no plugin sources). It only handles one
// native-syntax file without plugin blocks; otherwise (and when nothing is
// found) it returns nil. The caller checks the guess against the parsed
// runbook and discards the host if it does not fit.
func prestartGuess(path string, rf runFlags, stderr io.Writer) (*pluginhost.Host, string) {
	if !strings.HasSuffix(path, ".hcl") {
		return nil, ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, ""
	}
	names, pluginBlock := guessPlugins(b)
	if pluginBlock {
		return nil, ""
	}
	builtins := map[string]bool{}
	for _, n := range builtin.Names() {
		builtins[n] = true
	}
	guess := &lang.Config{BaseDir: filepath.Dir(path), Steps: map[string]*lang.Step{}}
	for _, name := range names {
		if builtins[name] {
			guess.Steps[name] = &lang.Step{Name: name, Plugin: name}
		}
	}
	if len(guess.Steps) == 0 {
		return nil, ""
	}
	h, err := openHost(guess, stateDirFor(rf, guess), stderr)
	if err != nil {
		return nil, ""
	}
	return h, guess.BaseDir
}

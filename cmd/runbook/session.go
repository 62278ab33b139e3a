package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/engine/view"
	"github.com/runbookdev/runbook/plugins/builtin"
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
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", stateDirUsage)
	cmd.Flags().BoolVar(&f.verbose, "verbose", false, "also show plugin debug logs and checkpoints")
}

// cli is a run command's session with its view: a live terminal view,
// plain lines, or JSON events.
type cli struct {
	stdout, stderr io.Writer
	s              *session.Session
	mask           *mask.Masker
	json           bool
	rollback       bool              // the command rolls back: the interrupt hint says how to continue that
	live           *view.Live        // the terminal view, nil when not on a terminal
	out            *view.AsyncWriter // plain or JSON events to stdout, nil with the live view
	// hint is what to run after a second interrupt; set by the session's
	// OnRun from the run's goroutine, read by the signal goroutine.
	hint atomic.Pointer[string]
}

func newCLI(stdout, stderr io.Writer, rf runFlags) (*cli, error) {
	c := &cli{stdout: stdout, stderr: stderr, json: rf.json, mask: mask.New()}
	var sink event.Sink
	if f, ok := stdout.(*os.File); ok && !rf.json && term.IsTerminal(int(f.Fd())) {
		w, _, _ := term.GetSize(int(f.Fd()))
		c.live = view.NewLive(stdout, c.mask, w, os.Getenv("NO_COLOR") == "")
		sink = c.live
	} else if rf.json {
		c.out = view.NewAsyncWriter(stdout)
		sink = view.JSON(c.out, c.mask)
	} else {
		c.out = view.NewAsyncWriter(stdout)
		p := view.NewPlain(c.out, c.mask)
		p.Verbose = rf.verbose
		sink = p
	}
	s, err := session.New(session.Options{
		StateDir: rf.stateDir, State: stateSpec, Parallelism: rf.parallelism, Sink: sink, Mask: c.mask, Stderr: stderr,
		Command: strings.Join(os.Args, " "), Builtins: builtin.All(),
		OnRun: func(_ string, cmds session.Commands) {
			h := "Resume with: " + cmds.Resume
			if c.rollback {
				h = "Continue with: " + cmds.Rollback
			}
			c.hint.Store(&h)
		},
	})
	if err != nil {
		return nil, err
	}
	c.s = s
	return c, nil
}

// close stops the live view and flushes what is queued for stdout and
// stderr.
func (c *cli) close() {
	if c.live != nil {
		c.live.Close()
	}
	c.flush()
	c.s.Close()
}

// flush writes out the events queued for stdout; call it before writing to
// stdout directly.
func (c *cli) flush() {
	if c.out != nil {
		c.out.Flush()
	}
}

// fail reports err (masked; diagnostics with their snippets) and returns
// the exit code error.
func (c *cli) fail(err error) error {
	c.flush()
	var de *session.DiagError
	if errors.As(err, &de) && len(de.Diags) > 0 {
		printDiags(c.stderr, de.Config, de.Diags)
		return withCode(exitError, nil)
	}
	fmt.Fprintln(c.stderr, "Error:", c.mask.Mask(err.Error()))
	var je *run.JournalError
	if errors.As(err, &je) {
		// The run stopped before its journal lost anything: it is
		// resumable once the disk has room again.
		if h := c.hint.Load(); h != nil {
			fmt.Fprintln(c.stderr, *h)
		}
		return withCode(exitInterrupted, nil)
	}
	return withCode(exitError, nil)
}

// interrupt returns a context cancelled on the first SIGINT/SIGTERM; the
// second exits at once with the hint.
func (c *cli) interrupt() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for range ch {
			if n++; n == 1 {
				fmt.Fprintln(c.stderr, "\nInterrupt received: stopping running steps; the run stays resumable. Press Ctrl-C again to exit now.")
				cancel()
				continue
			}
			c.flush()
			hint := ""
			if h := c.hint.Load(); h != nil {
				hint = *h
			}
			fmt.Fprintln(c.stderr, "\nSecond interrupt: exiting now. "+hint)
			os.Exit(exitInterrupted)
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// finish prints the summary (the JSON view has printed run_finished) and
// maps the run's state to the exit code.
func (c *cli) finish(out *session.Outcome) error {
	if !c.json {
		if c.live != nil {
			c.live.Close()
		}
		c.flush()
		next := out.Continue()
		sum := view.SummaryOf(out.RunID, out.Journal, out.Result, next.Resume, next.Rollback)
		// The summary goes to stdout; why the run failed goes to stderr,
		// like every other error.
		failure := sum.Error
		sum.Error = ""
		view.WriteSummary(c.stdout, c.mask, sum)
		if failure != "" {
			fmt.Fprintln(c.stderr, "Error:", c.mask.Mask(failure))
			var se *run.StepError
			if errors.As(out.Result.Err, &se) && se.Hint != "" {
				fmt.Fprintln(c.stderr, "Hint:", c.mask.Mask(se.Hint))
			}
		}
		if r := out.Recovery; r != nil {
			view.WriteRecovery(c.stdout, c.mask, r.Failed, r.Retry, r.Skip, r.Unlock)
		}
	}
	return withCode(exitCode(out), nil)
}

// exitCode maps a run's end to the documented exit status.
func exitCode(out *session.Outcome) int {
	res := out.Result
	if res.Interrupted {
		return exitInterrupted
	}
	switch res.State {
	case journal.RunSucceeded:
		return exitOK
	case journal.RunRolledBack:
		return exitRolledBack
	case journal.RunRollbackFailed:
		return exitRollbackFailed
	case journal.RunInterrupted, journal.RunAborted:
		return exitInterrupted // resumable
	}
	return exitError
}

// confirm prints the plan and asks for "yes" on the terminal.
func (c *cli) confirm(p *lang.Plan) (bool, error) {
	return c.ask("apply", "Apply this runbook?", p.WriteText)
}

// confirmUndo prints the undo plan and asks for "yes" on the terminal.
func (c *cli) confirmUndo(p *session.UndoPlan) (bool, error) {
	return c.ask("roll back", "Roll back this run?", func(w io.Writer) error { view.WriteUndoPlan(w, p); return nil })
}

// showPlan prints the plan without asking (apply -auto-approve, like
// Terraform); with -json, stdout holds only events and nothing is printed.
func (c *cli) showPlan(p *lang.Plan) (bool, error) {
	if !c.json {
		c.show(func(w io.Writer) error {
			err := p.WriteText(w)
			fmt.Fprintln(w)
			return err
		})
	}
	return true, nil
}

// show writes what is about to happen to stdout, masked.
func (c *cli) show(write func(io.Writer) error) {
	c.flush()
	mw := c.mask.Writer(c.stdout)
	write(mw)
	mw.Flush()
}

// ask writes what is about to happen (masked) and asks for "yes" on the
// terminal; without one it refuses, naming -auto-approve.
func (c *cli) ask(verb, question string, write func(io.Writer) error) (bool, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false, fmt.Errorf("stdin is not a terminal: pass -auto-approve to %s without confirmation", verb)
	}
	c.show(write)
	fmt.Fprint(c.stderr, "\n"+question+" Only 'yes' is accepted: ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	return strings.TrimSpace(line) == "yes", nil
}

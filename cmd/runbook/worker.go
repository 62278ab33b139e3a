package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

type workerFlags struct {
	stateDir    string
	capacity    int
	parallelism int
	lease       time.Duration
	rescueAfter time.Duration
	stopTimeout time.Duration
}

func init() {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker -state postgres://…",
		Short: "Run campaign runs from the state database's queue",
		Long: `Worker takes campaign runs from the queue of the state database (River jobs) and
runs them with this machine's plugins, -capacity at a time. A worker killed
without warning loses nothing: once its heartbeat is older than -lease, another
worker takes its runs over and resumes them from their journals (a step that was
in flight is applied again with the same idempotency key and checkpoint).

SIGTERM or Ctrl-C stops taking new runs and waits up to -stop-timeout for the
running ones; those still running then are interrupted (resumable: another
worker resumes them). A second signal exits at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWorker(cmd.ErrOrStderr(), f)
		},
	}
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "where what stays on this machine is kept: plugins, approvals (default: .runbook beside each runbook); runs are journaled in the database")
	cmd.Flags().IntVar(&f.capacity, "capacity", 4, "run at most N runs at once")
	cmd.Flags().IntVar(&f.parallelism, "parallelism", 10, "run at most N steps of a run at once")
	cmd.Flags().DurationVar(&f.lease, "lease", campaign.DefaultLease, "a worker without heartbeat for this long is dead, and so are the locks of its runs: another worker resumes them")
	cmd.Flags().DurationVar(&f.rescueAfter, "rescue-after", campaign.DefaultRescueAfter, "River retries a job running this long whatever its worker (a live worker's run is never run twice)")
	cmd.Flags().DurationVar(&f.stopTimeout, "stop-timeout", time.Minute, "on SIGTERM, how long to wait for running runs before interrupting them")
	rootCmd.AddCommand(cmd)
}

func runWorker(stderr io.Writer, f workerFlags) error {
	if f.capacity <= 0 {
		return withCode(exitError, fmt.Errorf("-capacity %d: give 1 or more", f.capacity))
	}
	if f.lease < time.Second {
		return withCode(exitError, fmt.Errorf("-lease %s: give 1s or more", f.lease))
	}
	u, err := stateURL()
	if err != nil {
		return withCode(exitError, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	// The runs' locks are leases as long as the worker's: a killed
	// worker's runs can be taken over once both have lapsed.
	db, err := journal.OpenPostgres(ctx, u, journal.WithMaxConns(int32(3*f.capacity+4)), journal.WithLease(f.lease))
	if err == nil {
		err = campaign.EnsureSchema(ctx, db.Pool())
	}
	cancel()
	if err != nil {
		return withCode(exitError, err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w, err := campaign.NewWorker(campaign.WorkerConfig{
		Pool: db.Pool(), Capacity: f.capacity, Lease: f.lease, RescueAfter: f.rescueAfter, Logger: log,
		Session: session.Options{DB: db, StateDir: f.stateDir, Parallelism: f.parallelism, Builtins: builtin.All(),
			Command: strings.Join(os.Args, " ")},
	})
	if err != nil {
		return withCode(exitError, err)
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := w.Start(context.Background()); err != nil {
		return withCode(exitError, err)
	}
	log.Info("worker started", "id", w.ID(), "capacity", f.capacity, "state", journal.RedactURL(u))
	<-sig
	log.Info("stopping: waiting for the running runs", "timeout", f.stopTimeout)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), f.stopTimeout)
	defer cancelStop()
	go func() {
		<-sig
		log.Warn("second signal: exiting now; the running runs are resumed by another worker")
		os.Exit(exitInterrupted)
	}()
	if err := w.Stop(stopCtx); err != nil {
		log.Warn("stopped with runs interrupted", "error", err)
	}
	log.Info("worker stopped", "id", w.ID())
	return nil
}

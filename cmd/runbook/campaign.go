package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// campaignFlags are shared by the campaign commands (the state database
// is the root's -state, or RUNBOOK_STATE).
type campaignFlags struct {
	json bool
}

func addCampaignFlags(cmd *cobra.Command, f *campaignFlags) {
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
}

// controlFlags are a campaign's controls (start, rollback).
type controlFlags struct {
	name        string
	concurrency int
	maxErrors   string
	canary      int
}

func addControlFlags(cmd *cobra.Command, f *controlFlags) {
	cmd.Flags().StringVar(&f.name, "name", "", "the campaign's name (default: the runbook's name and a unique suffix)")
	cmd.Flags().IntVar(&f.concurrency, "max-concurrency", 0, "run at most N targets at once across every worker (0: no cap)")
	cmd.Flags().StringVar(&f.maxErrors, "max-errors", "", "pause the campaign once N runs failed, or P% of the targets (e.g. 5 or 2%)")
	cmd.Flags().IntVar(&f.canary, "canary", 0, "run the first K targets first; the others start only when all K succeeded")
}

func init() {
	root := &cobra.Command{
		Use:   "campaign",
		Short: "Run a runbook over a fleet of targets on workers",
		Long: `A campaign runs one runbook once per target (a row of a CSV or JSON targets file,
whose fields become variables) on the workers (` + "`runbook worker`" + `) sharing a
PostgreSQL state database. See docs/campaigns.md.`,
	}
	var cf campaignFlags
	var ctl controlFlags
	var targets string
	var vars []string
	start := &cobra.Command{
		Use:   "start FILE -targets FILE",
		Short: "Start a campaign: one run per target, queued for the workers",
		Long: `Start checks every row of the targets file against the runbook (each field names
a variable; values must fit; the lock keys must differ) and records and enqueues
the campaign in one transaction: a bad row is named with its line and nothing is
enqueued. Sensitive columns are sealed with the state key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCampaignStart(cmd.Context(), cmd.OutOrStdout(), args[0], targets, vars, cf, ctl)
		},
	}
	addCampaignFlags(start, &cf)
	addControlFlags(start, &ctl)
	start.Flags().StringVar(&targets, "targets", "", "the targets file: CSV with a header row, or a JSON array of objects (required)")
	start.Flags().StringArrayVar(&vars, "var", nil, "set a variable for every target: NAME=VALUE (a target's field wins)")
	root.AddCommand(start)

	status := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a campaign: its state, counts by state and failed targets",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), cf, func(ctx context.Context, st *campaign.Store) error {
				s, err := st.Status(ctx, args[0])
				if err != nil {
					return err
				}
				return printStatus(cmd.OutOrStdout(), s, cf.json)
			})
		},
	}
	addCampaignFlags(status, &cf)
	root.AddCommand(status)

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the campaigns, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), cf, func(ctx context.Context, st *campaign.Store) error {
				all, err := st.List(ctx)
				if err != nil {
					return err
				}
				return printList(cmd.OutOrStdout(), all, cf.json)
			})
		},
	}
	addCampaignFlags(ls, &cf)
	root.AddCommand(ls)

	for _, c := range []struct {
		use, short string
		do         func(*campaign.Store, context.Context, string) error
	}{
		{"pause", "Pause a campaign: no new run starts; running ones finish", (*campaign.Store).Pause},
		{"resume", "Resume a paused campaign (or one whose canary failed)", (*campaign.Store).Resume},
		{"cancel", "Cancel a campaign: targets not started never will; running runs finish", (*campaign.Store).Cancel},
	} {
		cmd := &cobra.Command{
			Use:   c.use + " NAME",
			Short: c.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withStore(cmd.Context(), cf, func(ctx context.Context, st *campaign.Store) error {
					if err := c.do(st, ctx, args[0]); err != nil {
						return err
					}
					s, err := st.Status(ctx, args[0])
					if err != nil {
						return err
					}
					return printStatus(cmd.OutOrStdout(), s, cf.json)
				})
			},
		}
		addCampaignFlags(cmd, &cf)
		root.AddCommand(cmd)
	}

	var rctl controlFlags
	rollback := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Roll back every run of a campaign, as a new campaign with the same controls",
		Long: `Rollback starts a campaign that rolls back each run the campaign started (finished
or not), on the workers, with the campaign's -max-concurrency and -max-errors
unless given here. The campaign must have no run queued or running: pause or
cancel it first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withStore(cmd.Context(), cf, func(ctx context.Context, st *campaign.Store) error {
				budget, err := campaign.ParseBudget(rctl.maxErrors)
				if err != nil {
					return err
				}
				name := rctl.name
				if name == "" {
					name = args[0] + "-rollback"
				}
				s, err := st.Rollback(ctx, args[0], name, campaign.Spec{MaxConcurrency: rctl.concurrency, MaxErrors: budget, Canary: rctl.canary})
				if err != nil {
					return err
				}
				return printStatus(cmd.OutOrStdout(), s, cf.json)
			})
		},
	}
	addCampaignFlags(rollback, &cf)
	addControlFlags(rollback, &rctl)
	root.AddCommand(rollback)
	rootCmd.AddCommand(root)
}

// stateURL is the state database of -state or RUNBOOK_STATE.
func stateURL() (string, error) {
	u := stateSpec
	if u == "" {
		u = os.Getenv(session.StateEnv)
	}
	if !journal.IsPostgresURL(u) {
		if u == "" {
			return "", fmt.Errorf("campaigns and workers need a state database: pass -state postgres://… or set %s", session.StateEnv)
		}
		return "", fmt.Errorf("-state %q: campaigns and workers need a state database (postgres://…)", u)
	}
	return u, nil
}

// openState opens the state database: a clear error, having started
// nothing, when it is unreachable or its schema is missing or newer; then
// makes sure the campaign tables are there.
func openState(ctx context.Context) (*journal.PGStore, *campaign.Store, error) {
	u, err := stateURL()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := journal.OpenPostgres(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	if err := campaign.EnsureSchema(ctx, db.Pool()); err != nil {
		db.Close()
		return nil, nil, err
	}
	st, err := campaign.NewStore(db.Pool())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, st, nil
}

func withStore(ctx context.Context, cf campaignFlags, f func(context.Context, *campaign.Store) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	db, st, err := openState(ctx)
	if err != nil {
		return withCode(exitError, err)
	}
	defer db.Close()
	if err := f(ctx, st); err != nil {
		return withCode(exitError, err)
	}
	return nil
}

func runCampaignStart(ctx context.Context, stdout io.Writer, file, targets string, vars []string, cf campaignFlags, ctl controlFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if targets == "" {
		return withCode(exitError, errors.New("campaign start needs -targets FILE (CSV with a header row, or a JSON array of objects)"))
	}
	budget, err := campaign.ParseBudget(ctl.maxErrors)
	if err != nil {
		return withCode(exitError, err)
	}
	if ctl.concurrency < 0 || ctl.canary < 0 {
		return withCode(exitError, errors.New("-max-concurrency and -canary are counts (0 or more)"))
	}
	// The database first: an unreachable one is reported before anything.
	db, st, err := openState(ctx)
	if err != nil {
		return withCode(exitError, err)
	}
	defer db.Close()
	cfg, diags := lang.Load(file)
	if diags.HasErrors() {
		printDiags(os.Stderr, cfg, diags)
		return withCode(exitError, nil)
	}
	f, err := os.Open(targets)
	if err != nil {
		return withCode(exitError, err)
	}
	rows, err := campaign.ParseTargets(targets, f)
	f.Close()
	if err != nil {
		return withCode(exitError, err)
	}
	s, err := session.New(session.Options{Builtins: builtin.All(), Command: strings.Join(os.Args, " ")})
	if err != nil {
		return withCode(exitError, err)
	}
	defer s.Close()
	sealer, err := campaign.Sealer(s)
	if err != nil {
		return withCode(exitError, err)
	}
	name := ctl.name
	if name == "" {
		base := "campaign"
		if cfg.Runbook != nil && cfg.Runbook.Name != "" {
			base = cfg.Runbook.Name
		}
		name = base + "-" + strings.ToLower(ulid.Make().String()[18:])
	}
	ts, err := campaign.Prepare(cfg, targets, name, rows, vars, sealer)
	if err != nil {
		return withCode(exitError, err)
	}
	var files []string
	for n := range cfg.Sources {
		abs, err := filepath.Abs(n)
		if err != nil {
			return withCode(exitError, err)
		}
		files = append(files, abs)
	}
	sort.Strings(files)
	fp, _ := s.KeyInfo()
	status, err := st.Start(ctx, campaign.Spec{Name: name, Files: files, Targets: ts, MaxConcurrency: ctl.concurrency,
		MaxErrors: budget, Canary: ctl.canary, KeyFingerprint: fp})
	if err != nil {
		return withCode(exitError, err)
	}
	return printStatus(stdout, status, cf.json)
}

// targetStates is the order counts are shown in.
var targetStates = []string{campaign.TargetPending, campaign.TargetQueued, campaign.TargetRunning,
	campaign.TargetSucceeded, campaign.TargetFailed, campaign.TargetCancelled}

func counts(s *campaign.Status) string {
	var parts []string
	for _, k := range targetStates {
		if n := s.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) == 0 {
		return "no target"
	}
	return strings.Join(parts, ", ")
}

func printStatus(w io.Writer, s *campaign.Status, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(w, "Campaign %s (%s of %s): %s\n", s.Name, s.Kind, strings.Join(s.Files, ", "), s.State)
	if s.Reason != "" {
		fmt.Fprintf(w, "  %s\n", s.Reason)
	}
	fmt.Fprintf(w, "Targets: %d (%s)\n", s.Total, counts(s))
	var ctl []string
	if s.MaxConcurrency > 0 {
		ctl = append(ctl, fmt.Sprintf("max-concurrency %d", s.MaxConcurrency))
	}
	if s.MaxErrors > 0 {
		ctl = append(ctl, fmt.Sprintf("max-errors %s (pauses at %d failed)", s.MaxErrorsSpec, s.MaxErrors))
	}
	if s.Canary > 0 {
		ctl = append(ctl, fmt.Sprintf("canary %d", s.Canary))
	}
	if len(ctl) > 0 {
		fmt.Fprintf(w, "Controls: %s\n", strings.Join(ctl, ", "))
	}
	if len(s.Failed) > 0 {
		fmt.Fprintln(w, "Failed targets:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, t := range s.Failed {
			fmt.Fprintf(tw, "  line %d\t%s\t%s\t%s\n", t.Line, t.LockKey, t.RunID, t.Error)
		}
		tw.Flush()
	}
	return nil
}

func printList(w io.Writer, all []*campaign.Status, asJSON bool) error {
	if asJSON {
		if all == nil {
			all = []*campaign.Status{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	if len(all) == 0 {
		fmt.Fprintln(w, "No campaign.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tTARGETS\tCREATED")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d (%s)\t%s\n", s.Name, s.Kind, s.State, s.Total, counts(s), s.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

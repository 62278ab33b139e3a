package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/session"
)

// stateSpec is the -state flag of every command: a postgres:// URL keeps
// runs and locks in that database; a path is a state directory.
var stateSpec string

const stateUsage = "where runs and locks are kept: a postgres://USER@HOST/DB URL (password from PGPASSWORD or ~/.pgpass), or a state directory (default: $RUNBOOK_STATE, else the state directory, see -state-dir)"

func init() {
	rootCmd.PersistentFlags().StringVar(&stateSpec, "state", "", stateUsage)
	state := &cobra.Command{
		Use:   "state",
		Short: "Set up a PostgreSQL state and copy runs to and from it",
		Long: `State manages a PostgreSQL state (-state postgres://… or RUNBOOK_STATE), which keeps
the runs and locks of a team or of many workers in one database (see docs/state-postgres.md).`,
	}
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the state's schema (and River's), idempotent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stateMigrate(cmd.Context(), cmd.OutOrStdout())
		},
	}
	var stateDir string
	copyCmd := func(use, short string, push bool) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " [RUN...]",
			Short: short,
			Long: short + `. Every run, or the RUNs named (ids or unique prefixes),
is copied record by record as it is stored: sealed values stay sealed. It is idempotent:
runs already there are left, runs that went on since an earlier copy get their new
records. Locks are not copied.`,
			RunE: func(cmd *cobra.Command, args []string) error {
				return stateCopy(cmd.OutOrStdout(), stateDir, push, args)
			},
		}
		c.Flags().StringVar(&stateDir, "state-dir", "", stateDirUsage)
		return c
	}
	state.AddCommand(migrate,
		copyCmd("push", "Copy runs from the local state directory to the database", true),
		copyCmd("pull", "Copy runs from the database to the local state directory", false))
	rootCmd.AddCommand(state)
}

// databaseURL is the PostgreSQL URL of -state or RUNBOOK_STATE.
func databaseURL() (string, error) {
	u := stateSpec
	if u == "" {
		u = os.Getenv(session.StateEnv)
	}
	if !journal.IsPostgresURL(u) {
		return "", errors.New("no PostgreSQL state: give -state postgres://USER@HOST/DB or set RUNBOOK_STATE")
	}
	return u, nil
}

func stateMigrate(ctx context.Context, w io.Writer) error {
	u, err := databaseURL()
	if err != nil {
		return withCode(exitError, err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	res, err := journal.Migrate(ctx, u)
	if err != nil {
		return withCode(exitError, err)
	}
	where := journal.RedactURL(u)
	if res.From == res.To {
		fmt.Fprintf(w, "Schema runbook in %s is up to date (version %d).\n", where, res.To)
	} else {
		fmt.Fprintf(w, "Schema runbook in %s: version %d -> %d.\n", where, res.From, res.To)
	}
	if len(res.River) == 0 {
		fmt.Fprintln(w, "River's tables are up to date.")
	} else {
		fmt.Fprintf(w, "River's migrations applied: %s.\n", joinInts(res.River))
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// stateCopy copies runs between the state directory and the database:
// push to the database, or pull from it.
func stateCopy(w io.Writer, stateDir string, push bool, runs []string) error {
	u, err := databaseURL()
	if err != nil {
		return withCode(exitError, err)
	}
	if stateDir == "" {
		stateDir = os.Getenv(session.StateDirEnv)
	}
	if stateDir == "" {
		stateDir = session.FindStateDir(".")
	}
	db, err := journal.OpenPostgres(context.Background(), u)
	if err != nil {
		return withCode(exitError, err)
	}
	defer db.Close()
	var src, dst journal.Store = journal.NewLocal(stateDir), db
	if !push {
		src, dst = db, src
	}
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		id, err := src.Resolve(r)
		if err != nil {
			return withCode(exitError, err)
		}
		ids = append(ids, id)
	}
	rep, err := journal.CopyRuns(dst, src, ids)
	if rep != nil {
		to := db.Where()
		if !push {
			to = stateDir
		}
		fmt.Fprintf(w, "%d runs copied to %s, %d extended, %d already there.\n", len(rep.Copied), to, len(rep.Extended), len(rep.UpToDate))
	}
	if err != nil {
		return withCode(exitError, err)
	}
	return nil
}

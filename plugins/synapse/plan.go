package synapse

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/sdk"
)

var _ sdk.Planner = (*migrateAction)(nil)

// Plan estimates what a migration would copy, reading both databases
// inside read-only transactions. Unreachable databases become warnings.
func (a *migrateAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "migrate Synapse accounts into MAS (inputs known only at apply)"}, nil
	}
	var in migrateInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	e, err := loadEnv(in.SynapseConfig, in.MASConfig, in.SynapseDatabaseURL, in.MASDatabaseURL)
	if err != nil {
		return nil, err
	}
	res := &sdk.PlanResult{Counts: map[string]int64{}}
	var est map[string]int64
	if err := readOnly(ctx, e.synDB, func(tx pgx.Tx) error {
		var err error
		est, err = entityTotals(ctx, tx)
		return err
	}); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("cannot estimate the Synapse rows: %v", err))
	}
	if err := readOnly(ctx, e.masDB, func(tx pgx.Tx) error {
		t, err := nonEmptyTable(ctx, e.masDB, tx)
		if err == nil && t != "" {
			res.Warnings = append(res.Warnings, notEmptyError(e.masDB, t).Err.Error()+": apply will fail")
		}
		return err
	}); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("cannot check the MAS database: %v", err))
	}
	var parts []string
	var total int64
	for _, ent := range entities {
		if n, ok := est[ent]; ok {
			parts = append(parts, fmt.Sprintf("~%d %s", n, ent))
			res.Details = append(res.Details, fmt.Sprintf("%s: ~%d rows (pg_class estimate)", ent, n))
			total += n
		}
	}
	res.Counts["add"] = total
	what := "copy " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		what = "copy the Synapse accounts"
	}
	res.Summary = fmt.Sprintf("%s into the %s", what, e.masDB.where())
	if in.DryRun {
		res.Summary = "dry run (rolled back): " + res.Summary
		res.Counts = map[string]int64{}
	}
	return res, nil
}

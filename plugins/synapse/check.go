package synapse

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

type checkAction struct{}

var _ sdk.Action = (*checkAction)(nil)

type checkInputs struct {
	SynapseConfig          []string `cty:"synapse_config"`
	MASConfig              string   `cty:"mas_config"`
	SynapseDatabaseURL     string   `cty:"synapse_database_url"`
	MASDatabaseURL         string   `cty:"mas_database_url"`
	IgnoreMissingProviders bool     `cty:"ignore_missing_providers"`
	DropUnmappedLinks      bool     `cty:"drop_links_without_mas_provider"`
}

func (in checkInputs) options() checkOptions {
	return checkOptions{ignoreMissingProviders: in.IgnoreMissingProviders, dropUnmappedLinks: in.DropUnmappedLinks}
}

func (a *checkAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "check",
		Description: "Check the Synapse and MAS configs and databases before a migration. Read-only on both " +
			"databases and files (it writes nothing, not even MAS schema migrations). Fails when it finds errors.",
		Inputs: commonInputAttrs,
		Outputs: []sdk.Attribute{
			{Name: "errors", Type: cty.List(cty.String), Description: "Problems that would make the migration fail or lose data."},
			{Name: "warnings", Type: cty.List(cty.String), Description: "Things to know; they do not stop a migration."},
			{Name: "counts", Type: cty.Map(cty.Number), Description: "Estimated Synapse rows per entity (pg_class estimates)."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (a *checkAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in checkInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	e, err := loadEnv(in.SynapseConfig, in.MASConfig, in.SynapseDatabaseURL, in.MASDatabaseURL)
	if err != nil {
		return nil, err
	}
	r := &report{}
	checkConfigs(e, r)

	if err := readOnly(ctx, e.synDB, func(tx pgx.Tx) error { return checkSynapseDB(ctx, e, tx, in.options(), r) }); err != nil {
		return nil, err
	}
	if err := readOnly(ctx, e.masDB, func(tx pgx.Tx) error { return checkMASDB(ctx, e, tx, r) }); err != nil {
		return nil, err
	}
	for _, w := range r.warnings {
		ev.Log(sdk.LevelWarn, w)
	}
	for _, x := range r.errors {
		ev.Log(sdk.LevelError, x)
	}
	res := &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"errors": strList(r.errors), "warnings": strList(r.warnings), "counts": numMap(r.counts),
	})}
	if len(r.errors) > 0 {
		return res, sdk.Errorf(sdk.KindConflict, false, "fix the errors listed, then check again",
			"%d check errors: %s", len(r.errors), strings.Join(r.errors, "; "))
	}
	return res, nil
}

// readOnly runs f in a READ ONLY transaction, so the server itself refuses
// any write, and rolls it back.
func readOnly(ctx context.Context, db *dbTarget, f func(pgx.Tx) error) error {
	conn, err := db.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return db.classify(err, "start a read-only transaction on")
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := f(tx); err != nil {
		if _, ok := err.(*sdk.Error); ok {
			return err
		}
		return db.classify(err, "check")
	}
	return nil
}

func strList(s []string) cty.Value {
	if len(s) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	v := make([]cty.Value, len(s))
	for i, x := range s {
		v[i] = cty.StringVal(x)
	}
	return cty.ListVal(v)
}

func numMap(m map[string]int64) cty.Value {
	if len(m) == 0 {
		return cty.MapValEmpty(cty.Number)
	}
	v := map[string]cty.Value{}
	for k, n := range m {
		v[k] = cty.NumberIntVal(n)
	}
	return cty.MapVal(v)
}

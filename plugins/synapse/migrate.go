package synapse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

type migrateAction struct{}

var (
	_ sdk.Action = (*migrateAction)(nil)
	_ sdk.Undoer = (*migrateAction)(nil)
)

type migrateInputs struct {
	SynapseConfig          []string `cty:"synapse_config"`
	MASConfig              string   `cty:"mas_config"`
	SynapseDatabaseURL     string   `cty:"synapse_database_url"`
	MASDatabaseURL         string   `cty:"mas_database_url"`
	IgnoreMissingProviders bool     `cty:"ignore_missing_providers"`
	DropUnmappedLinks      bool     `cty:"drop_links_without_mas_provider"`
	DryRun                 bool     `cty:"dry_run"`
}

func (in migrateInputs) options() checkOptions {
	return checkOptions{ignoreMissingProviders: in.IgnoreMissingProviders, dropUnmappedLinks: in.DropUnmappedLinks}
}

var countMap = cty.Map(cty.Number)

func (a *migrateAction) Schema() sdk.ActionSchema {
	in := append([]sdk.Attribute{}, commonInputAttrs...)
	in = append(in, sdk.Attribute{Name: "dry_run", Type: cty.Bool,
		Description: "Run the whole migration in one MAS transaction and roll it back: same counts and timing, nothing kept."})
	return sdk.ActionSchema{
		Name: "migrate",
		Description: "Copy users, passwords, emails, external IdP links, devices and access/refresh tokens from a stopped " +
			"Synapse's database into an empty MAS database, in one transaction, with COPY and constraints rebuilt.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "migrated", Type: countMap, Description: "Rows migrated per entity (users, threepids, external_ids, nonrefreshable_access_tokens, refreshable_tokens, devices)."},
			{Name: "skipped", Type: countMap, Description: "Rows skipped per entity."},
			{Name: "written", Type: countMap, Description: "Rows written per MAS table."},
			{Name: "dry_run", Type: cty.Bool, Description: "Whether the run was rolled back."},
			{Name: "duration_seconds", Type: cty.Number, Description: "Wall-clock time of the migration."},
			{Name: "warnings", Type: cty.List(cty.String), Description: "Rows dropped with a warning."},
		},
		MaxConcurrency: 1,
	}
}

// undoState is journaled after a real run: the tables that were filled.
type undoState struct {
	Tables  []string         `json:"tables"`
	Written map[string]int64 `json:"written"`
}

// checkpoint is emitted just before the MAS commit; on a resume it tells a
// committed run (tables full) from one that never committed (tables empty).
type checkpoint struct {
	Committing bool             `json:"committing"`
	Outputs    json.RawMessage  `json:"outputs"`
	Written    map[string]int64 `json:"written"`
}

type migrateOutputs struct {
	Migrated map[string]int64 `json:"migrated"`
	Skipped  map[string]int64 `json:"skipped"`
	Written  map[string]int64 `json:"written"`
	DryRun   bool             `json:"dry_run"`
	Duration float64          `json:"duration_seconds"`
	Warnings []string         `json:"warnings"`
}

func (o *migrateOutputs) value() cty.Value {
	cm := func(m map[string]int64) cty.Value {
		vals := map[string]cty.Value{}
		for k, v := range m {
			vals[k] = cty.NumberIntVal(v)
		}
		if len(vals) == 0 {
			return cty.MapValEmpty(cty.Number)
		}
		return cty.MapVal(vals)
	}
	warn := cty.ListValEmpty(cty.String)
	if len(o.Warnings) > 0 {
		w := make([]cty.Value, len(o.Warnings))
		for i, s := range o.Warnings {
			w[i] = cty.StringVal(s)
		}
		warn = cty.ListVal(w)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"migrated": cm(o.Migrated), "skipped": cm(o.Skipped), "written": cm(o.Written),
		"dry_run": cty.BoolVal(o.DryRun), "duration_seconds": cty.NumberFloatVal(o.Duration), "warnings": warn,
	})
}

func (a *migrateAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in migrateInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	e, err := loadEnv(in.SynapseConfig, in.MASConfig, in.SynapseDatabaseURL, in.MASDatabaseURL)
	if err != nil {
		return nil, err
	}
	if len(e.badProviders) > 0 {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "provider ids in the MAS config must be ULIDs", "invalid MAS provider ids: %v", e.badProviders)
	}
	start := time.Now()

	masConn, err := e.masDB.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer masConn.Close(context.Background())
	if err := lockMAS(ctx, e.masDB, masConn); err != nil {
		return nil, err
	}
	defer unlockMAS(masConn)

	masTx, err := masConn.Begin(ctx)
	if err != nil {
		return nil, e.masDB.classify(err, "start a transaction on")
	}
	defer func() { _ = masTx.Rollback(context.Background()) }()
	if t, err := nonEmptyTable(ctx, e.masDB, masTx); err != nil {
		return nil, err
	} else if t != "" {
		if res := resumed(req.Checkpoint); res != nil && !in.DryRun {
			ev.Log(sdk.LevelInfo, "the migration was committed before the interruption; reusing its result")
			return res, nil
		}
		return nil, notEmptyError(e.masDB, t)
	}
	if err := checkProviderRows(ctx, e, masTx); err != nil {
		return nil, err
	}

	synConn, err := e.synDB.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer synConn.Close(context.Background())
	warnOtherSessions(ctx, synConn, ev, in.DryRun)
	synTx, err := openSynapse(ctx, e.synDB, synConn, in.DryRun)
	if err != nil {
		return nil, err
	}
	defer func() { _ = synTx.Rollback(context.Background()) }()

	if err := preflight(ctx, e, in.options(), synTx, masTx, ev); err != nil {
		return nil, err
	}

	defer tuneGC()()
	m := newMigration(e, in.DropUnmappedLinks, ev, synTx, masTx)
	var pf *prefetcher
	if m.totals, err = entityTotals(ctx, synTx); err != nil {
		return nil, e.synDB.classify(err, "estimate row counts of")
	}
	if m.reads, pf, err = startReads(ctx, e.synDB, synTx, m.totals[entDevices]); err != nil {
		return nil, err
	}
	defer pf.stop()
	m.readsDone = pf.done

	if err := configureRebuild(ctx, masTx); err != nil {
		return nil, e.masDB.classify(err, "configure the transaction on")
	}
	if presortable(ctx, masTx) {
		m.presort = maps.Clone(presortColumns)
		// Synapse sorts the users (qUsersByLocalpart).
		delete(m.presort, "users")
		m.usersSorted = true
	}
	// The users query is sent now: Synapse reads (and sorts) them while
	// MAS pauses the constraints and truncates the tables.
	if err := m.queryUsers(ctx); err != nil {
		return nil, a.stepErr(ctx, e, err)
	}
	defer m.usersRows.Close()
	defs, err := pauseConstraints(ctx, masTx)
	if err != nil {
		return nil, e.masDB.classify(err, "pause constraints of")
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("paused %d constraints and indexes of the MAS tables", len(defs)))
	if t, err := truncateForLoad(ctx, masTx); err != nil {
		return nil, e.masDB.classify(err, "prepare the tables of")
	} else if t != "" {
		return nil, notEmptyError(e.masDB, t)
	}
	m.freeze = true // the tables were truncated in this transaction
	m.plan = newRebuildPlan(defs)

	steps := []struct {
		entity string
		run    func(context.Context) error
	}{
		{entUsers, m.migrateUsers}, {entThreepids, m.migrateThreepids}, {entExternalIDs, m.migrateExternalIDs},
		{entAccessTokens, m.migrateAccessTokens}, {entRefresh, m.migrateRefreshTokens}, {entDevices, m.migrateDevices},
	}
	// The copier goroutine owns the MAS connection during the load: make
	// sure it is done before anything else touches it, even on failure.
	defer func() { _ = m.finishLoad() }()
	for _, s := range steps {
		t0 := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, a.stepErr(ctx, e, err)
		}
		mapped := time.Since(t0)
		if err := m.stepDone(ctx, s.entity); err != nil {
			return nil, a.stepErr(ctx, e, err)
		}
		m.progress(s.entity)
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%d %s migrated (%d skipped) in %s (read and mapped in %s)", m.migrated[s.entity], s.entity, m.skipped[s.entity],
			time.Since(t0).Round(time.Millisecond), mapped.Round(time.Millisecond)))
	}
	t0 := time.Now()
	if err := m.finishLoad(); err != nil {
		return nil, a.stepErr(ctx, e, err)
	}
	// The read transaction wrote nothing; end it now.
	if err := synTx.Commit(ctx); err != nil {
		return nil, e.synDB.classify(err, "finish the read transaction on")
	}

	// Normally everything was handed to the copier as its tables filled up.
	rest := m.plan.rest()
	if err := restoreConstraints(ctx, masTx, rest, ev); err != nil {
		return nil, a.stepErr(ctx, e, err)
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("rebuilt %d constraints and indexes; the last writes and rebuilds took %s after the last Synapse read",
		m.rebuilt+len(rest), time.Since(t0).Round(time.Millisecond)))

	out := &migrateOutputs{Migrated: fill(m.migrated), Skipped: fill(m.skipped), Written: m.written, DryRun: in.DryRun, Warnings: m.warnings}
	if in.DryRun {
		if err := masTx.Rollback(ctx); err != nil {
			return nil, e.masDB.classify(err, "roll back the dry run on")
		}
		out.Duration = time.Since(start).Seconds()
		ev.Log(sdk.LevelInfo, "dry run: rolled back, the MAS database is unchanged")
		return &sdk.Result{Outputs: out.value()}, nil
	}
	out.Duration = time.Since(start).Seconds()
	st := undoState{Tables: masTables, Written: m.written}
	undo, _ := json.Marshal(st)
	ob, _ := json.Marshal(out)
	cp, _ := json.Marshal(checkpoint{Committing: true, Outputs: ob, Written: m.written})
	if err := ev.Checkpoint(cp); err != nil {
		return nil, fmt.Errorf("record checkpoint: %w", err)
	}
	if err := masTx.Commit(ctx); err != nil {
		return nil, e.masDB.classify(err, "commit the migration on")
	}
	return &sdk.Result{Outputs: out.value(), UndoState: undo}, nil
}

// stepErr classifies a failure during the load; classified errors pass.
func (a *migrateAction) stepErr(ctx context.Context, e *env, err error) error {
	if dup := explainDuplicate(ctx, e, err); dup != nil {
		return dup
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	var re *readError
	if errors.As(err, &re) {
		return e.synDB.classify(err, "read "+re.table+" of")
	}
	return e.masDB.classify(err, "migrate into")
}

// resumed rebuilds the result of a run that committed before it could
// report, from its checkpoint.
func resumed(cp []byte) *sdk.Result {
	if len(cp) == 0 {
		return nil
	}
	var c checkpoint
	if json.Unmarshal(cp, &c) != nil || !c.Committing {
		return nil
	}
	var out migrateOutputs
	if json.Unmarshal(c.Outputs, &out) != nil {
		return nil
	}
	undo, _ := json.Marshal(undoState{Tables: masTables, Written: c.Written})
	return &sdk.Result{Outputs: out.value(), UndoState: undo}
}

func fill(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, e := range entities {
		out[e] = m[e]
	}
	return out
}

// entityTotals estimates each entity's row count.
func entityTotals(ctx context.Context, tx pgx.Tx) (map[string]int64, error) {
	est, err := estimates(ctx, tx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, e := range entities {
		out[e] = est[entityTable[e]]
	}
	return out, nil
}

// preflight runs the checks of synapse.check that can refuse again, on
// the snapshot the migration reads and on its MAS transaction: configs,
// MAS schema, Synapse rows. Errors stop the migration before it writes.
// Left out: the warnings (check gave them), and rows whose user is not
// migrated, which the migration itself stops at, inside its transaction
// (finding them first would read the five largest tables twice).
func preflight(ctx context.Context, e *env, opt checkOptions, synTx, masTx pgx.Tx, ev sdk.Events) error {
	t0 := time.Now()
	defer func() { ev.Log(sdk.LevelDebug, fmt.Sprintf("checks took %s", time.Since(t0).Round(time.Millisecond))) }()
	opt.errorsOnly = true
	r := &report{}
	checkConfigs(e, r)
	if _, err := checkMASSchema(ctx, masTx, r); err != nil {
		return e.masDB.classify(err, "check the schema of")
	}
	if err := checkSynapseDB(ctx, e, synTx, opt, r); err != nil {
		return e.synDB.classify(err, "check")
	}
	for _, w := range r.warnings {
		ev.Log(sdk.LevelWarn, w)
	}
	if len(r.errors) > 0 {
		return sdk.Errorf(sdk.KindConflict, false, "fix what the checks found (synapse.check lists it), then migrate again",
			"the checks found %d errors, nothing was written: %s", len(r.errors), strings.Join(r.errors, "; "))
	}
	return nil
}

// checkProviderRows makes sure every MAS provider the links may point at
// exists in the MAS database (MAS creates them with `mas-cli config sync`).
func checkProviderRows(ctx context.Context, e *env, tx pgx.Tx) error {
	for idp, id := range e.providers {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM upstream_oauth_providers WHERE upstream_oauth_provider_id = $1", id).Scan(&one)
		if err == pgx.ErrNoRows {
			return sdk.Errorf(sdk.KindConflict, false, "run `mas-cli config sync` so that MAS creates its upstream providers, then migrate",
				"the MAS provider for synapse_idp_id %q is not in the MAS database yet", idp)
		}
		if err != nil {
			return e.masDB.classify(err, "read upstream_oauth_providers of")
		}
	}
	return nil
}

// warnOtherSessions logs the other sessions connected to the Synapse
// database: an idle Synapse holds no lock, so the table locks alone cannot
// prove it is stopped.
func warnOtherSessions(ctx context.Context, conn *pgx.Conn, ev sdk.Events, dryRun bool) {
	if dryRun {
		return
	}
	var n int
	err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
	if err == nil && n > 0 {
		ev.Log(sdk.LevelWarn, fmt.Sprintf("%d other sessions are connected to the Synapse database: make sure Synapse and its workers are stopped", n))
	}
}

package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/runbookdev/runbook/engine/campaign"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/session"
	"github.com/runbookdev/runbook/plugins/builtin"
)

// campaignSink adds the consumer's migrations to a campaign (-campaign)
// instead of running them here: the workers of the state database run
// them.
type campaignSink struct {
	name  string
	files []string
	cfg   *lang.Config
	db    *journal.PGStore
	store *campaign.Store
	s     *session.Session
}

func openCampaignSink(ctx context.Context, name, runbook string) (*campaignSink, error) {
	cfg, diags := lang.Load(runbook)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s: %s", runbook, diags.Error())
	}
	abs, err := filepath.Abs(runbook)
	if err != nil {
		return nil, err
	}
	db, st, err := openState(ctx)
	if err != nil {
		return nil, err
	}
	s, err := session.New(session.Options{Builtins: builtin.All()})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &campaignSink{name: name, files: []string{abs}, cfg: cfg, db: db, store: st, s: s}, nil
}

func (k *campaignSink) close() { k.s.Close(); k.db.Close() }

// add records the migration as a target of the campaign (sensitive
// variables sealed with the state key, as `campaign start` does); a
// redelivered message adds nothing. The message is acked once it is
// recorded.
func (k *campaignSink) add(ctx context.Context, m migrationMsg, vars lang.VarSources) (bool, error) {
	sealer, err := campaign.Sealer(k.s)
	if err != nil {
		return false, err
	}
	ts, err := campaign.Prepare(k.cfg, "migration "+m.MigrationID, k.name+"/"+m.MigrationID,
		[]campaign.Row{{Line: 0}}, vars.Args, sealer)
	if err != nil {
		return false, err
	}
	if ts[0].LockKey == "line:0" {
		ts[0].LockKey = "migration:" + m.MigrationID
	}
	fp, _ := k.s.KeyInfo()
	n, err := k.store.Add(ctx, campaign.Spec{Name: k.name, Files: k.files, Targets: ts, KeyFingerprint: fp})
	return n > 0, err
}

// enqueue adds a requested migration to the campaign and acks its message
// once recorded; a message that cannot be recorded is dropped to the
// dead-letter exchange with the document marked failed, like a run that
// cannot start.
func (c *consumer) enqueue(ctx context.Context, m migrationMsg, d amqpAcker) {
	vars, err := c.vars(m)
	var added bool
	if err == nil {
		added, err = c.campaign.add(ctx, m, vars)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "consume: migration %s: %v\n", m.MigrationID, err)
		_ = c.updateDoc(m, func(doc map[string]any) {
			if s, _ := doc["status"].(string); s == "pending" {
				doc["status"], doc["failure_reason"] = "failed", err.Error()
			}
		})
		_ = d.Nack(false, false)
		return
	}
	what := "added to"
	if !added {
		what = "already in"
	}
	fmt.Fprintf(c.out, "consume: migration %s of %s %s campaign %s\n", m.MigrationID, m.WorkplaceFqdn, what, c.campaign.name)
	_ = c.out.Flush()
	_ = d.Ack(false)
}

// amqpAcker is the part of a delivery enqueue uses.
type amqpAcker interface {
	Ack(multiple bool) error
	Nack(multiple, requeue bool) error
}

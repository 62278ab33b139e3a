package nextcloud

import (
	"context"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// updateMigrationAction is nextcloud.update_migration.
type updateMigrationAction struct{}

var _ sdk.Action = updateMigrationAction{}

// updateInputs are the inputs of nextcloud.update_migration.
type updateInputs struct {
	TrackingDir   string      `cty:"tracking_dir" doc:"Directory of the tracking documents (as for nextcloud.request_migration). Set this or couchdb_url."`
	CouchDBURL    string      `cty:"couchdb_url" runbook:"sensitive" doc:"CouchDB server keeping the tracking documents (as for nextcloud.request_migration). Set this or tracking_dir."`
	CouchDBUser   string      `cty:"couchdb_username" doc:"CouchDB user name."`
	CouchDBPass   string      `cty:"couchdb_password" runbook:"sensitive" doc:"CouchDB password; never printed."`
	Instance      string      `cty:"instance" runbook:"required" doc:"The workplace domain."`
	MigrationID   string      `cty:"migration_id" runbook:"required" doc:"The migration."`
	Status        string      `cty:"status" doc:"New status: running, completed, failed or canceled (empty: unchanged)."`
	FilesImported *int64      `cty:"files_imported" doc:"progress.files_imported."`
	FilesTotal    *int64      `cty:"files_total" doc:"progress.files_total."`
	BytesImported *int64      `cty:"bytes_imported" doc:"progress.bytes_imported."`
	BytesTotal    *int64      `cty:"bytes_total" doc:"progress.bytes_total."`
	Errors        []fileError `cty:"errors" doc:"Replaces errors[] (as nextcloud.copy outputs them)."`
	Skipped       []skipped   `cty:"skipped" doc:"Replaces skipped[] (as nextcloud.copy outputs them)."`
	FailureReason string      `cty:"failure_reason" doc:"Why the migration failed."`
	SourceDeleted bool        `cty:"source_deleted" doc:"Set source_deleted_at to now."`
}

func (updateMigrationAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "update_migration",
		Description: "Update a migration's tracking document: status (with started_at, finished_at and canceled_at), nested progress, errors[] and skipped[], and last_heartbeat_at. " +
			"A runbook run by the consumer keeps the document true with it as it goes.",
		Inputs: sdk.MustAttributesOf(updateInputs{}),
		Outputs: []sdk.Attribute{
			{Name: "status", Type: cty.String, Description: "The status now recorded."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (a updateMigrationAction) Apply(_ context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in updateInputs
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	if err := checkInstance(in.Instance); err != nil {
		return nil, err
	}
	store, err := openStore(req.Inputs)
	if err != nil {
		return nil, err
	}
	unlock, err := store.lock(in.Instance)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var d *trackDoc
	// A document written meanwhile by another writer (409) is read again.
	err = retryConflict(func() error {
		var err error
		if d, err = store.get(in.Instance, in.MigrationID); err != nil {
			return err
		}
		if err := in.apply(d); err != nil {
			return err
		}
		return store.put(d)
	})
	if err != nil {
		return nil, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("migration %s: %s", d.ID, d.Status))
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{"status": cty.StringVal(d.Status)})}, nil
}

// apply sets what the inputs give on the document.
func (in *updateInputs) apply(d *trackDoc) error {
	t := now()
	switch in.Status {
	case "":
	case "running", "pending":
		if d.StartedAt == nil && in.Status == "running" {
			d.StartedAt = &t
		}
		d.Status = in.Status
	case "completed", "failed", "canceled":
		d.Status = in.Status
		d.FinishedAt = &t
		if in.Status == "canceled" {
			d.CanceledAt = &t
		}
	default:
		return sdk.Errorf(sdk.KindInvalid, false, "use pending, running, completed, failed or canceled", "unknown status %q", in.Status)
	}
	set := func(dst *int64, v *int64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&d.Progress.FilesImported, in.FilesImported)
	set(&d.Progress.FilesTotal, in.FilesTotal)
	set(&d.Progress.BytesImported, in.BytesImported)
	set(&d.Progress.BytesTotal, in.BytesTotal)
	if in.Errors != nil {
		d.Errors = make([]trackError, 0, len(in.Errors))
		for _, e := range in.Errors {
			d.Errors = append(d.Errors, trackError{Path: e.Path, Message: e.Message, At: t})
		}
	}
	if in.Skipped != nil {
		d.Skipped = make([]trackSkip, 0, len(in.Skipped))
		for _, s := range in.Skipped {
			d.Skipped = append(d.Skipped, trackSkip(s))
		}
	}
	if in.FailureReason != "" {
		d.FailureReason = in.FailureReason
	}
	if in.SourceDeleted {
		d.SourceDeletedAt = &t
	}
	d.LastHeartbeatAt = &t
	return nil
}

// Package couchdb is the runbook plugin for CouchDB and compatible servers:
// checks, replication with checkpoints and verification, _security copies,
// dumps and restores, Mango finds, guarded deletes and single-document
// writes, each with native undo where it changes data.
//
// One file per action; client.go is the HTTP client (authentication, error
// classification with hints, credential redaction) and replicator.go the
// replication protocol (_changes → _revs_diff → _bulk_get → _bulk_docs).
package couchdb

import "github.com/runbookdev/runbook/sdk"

// Version is the plugin's version.
const Version = "0.1.0"

// New returns the couchdb plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "couchdb",
		Version: Version,
		Actions: []sdk.Action{
			checkAction{},
			replicateAction{},
			copySecurityAction{},
			dumpAction{},
			restoreAction{},
			findAction{},
			deleteDocsAction{},
			putDocAction{},
			verifyAction{},
		},
	}
}

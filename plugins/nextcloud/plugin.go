// Package nextcloud is the runbook plugin for Nextcloud (and other WebDAV
// servers): a credentials probe, a read-only inventory, a resumable and
// verified copy of a user's tree with native undo, and the bulk-migration
// contract over RabbitMQ.
//
// client.go is the HTTP client (Basic auth, error classification with
// hints, Retry-After), dav.go the PROPFIND walk (Depth 1 only), and one
// file per action.
package nextcloud

import "github.com/runbookdev/runbook/sdk"

// Version is the plugin's version.
const Version = "0.1.0"

// New returns the nextcloud plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "nextcloud",
		Version: Version,
		Actions: []sdk.Action{
			probeAction{},
			inventoryAction{},
			copyAction{},
			requestMigrationAction{},
			cancelMigrationAction{},
			updateMigrationAction{},
			deleteSourceAction{},
		},
	}
}

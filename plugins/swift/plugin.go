// Package swift is the runbook plugin for OpenStack Swift accounts:
// listing, copying whole accounts or containers to another account or a
// local directory (metadata, content types and mtimes kept, every byte
// checked against its MD5, DLO and SLO objects as segments plus a
// recreated manifest, resumable), verifying a copy, and deleting.
//
// Accounts are reached with tempauth (v1 auth URL, user, key), with a
// storage URL and token from another step, or through HubiC's OAuth API
// (plugins/hubic/hubicapi), which also renews refused tokens.
package swift

import "github.com/runbookdev/runbook/sdk"

// Version is the plugin's version.
const Version = "0.1.0"

// New returns the swift plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "swift",
		Version: Version,
		Actions: []sdk.Action{listAction{}, copyAction{}, verifyAction{}, deleteAction{}},
	}
}

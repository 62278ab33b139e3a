package builtin

import "github.com/runbookdev/runbook/plugins/nextcloud"

func init() { register("nextcloud", nextcloud.New) }

package builtin

import "github.com/runbookdev/runbook/plugins/couchdb"

func init() { register("couchdb", couchdb.New) }

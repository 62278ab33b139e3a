// Package runbooks holds the runbooks shipped with runbook (*.hcl) and the
// examples (examples/). It has no code: its tests run each shipped runbook
// through the engine with the real plugins against real servers
// (internal/testenv), so that no plugin package needs to import the engine.
package runbooks

// Package safeenv gives child processes (plugin processes, core.exec
// commands) the engine's environment minus the engine's own secrets: the
// state key that seals the journal and the values of runbook variables.
// A plugin gets what a step gives it in its inputs; a command gets what
// core.exec's `env` input names.
package safeenv

import (
	"os"
	"strings"
)

// private are the engine's variables no child may see: the state key
// (journal.EnvStateKey, journal.EnvStateKeyFile), the state database's URL,
// which may hold its password (session.StateEnv), and every variable value
// (lang.EnvPrefix). Literals here: this package sits below them.
var private = []string{"RUNBOOK_STATE_KEY=", "RUNBOOK_STATE_KEY_FILE=", "RUNBOOK_STATE="}

const varPrefix = "RUNBOOK_VAR_"

// Private reports whether the KEY=VALUE entry kv is one of the engine's
// private variables.
func Private(kv string) bool {
	if strings.HasPrefix(kv, varPrefix) {
		return true
	}
	for _, p := range private {
		if strings.HasPrefix(kv, p) {
			return true
		}
	}
	return false
}

// Filter returns env without the engine's private variables (a new slice).
func Filter(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !Private(kv) {
			out = append(out, kv)
		}
	}
	return out
}

// Environ is os.Environ without the engine's private variables.
func Environ() []string { return Filter(os.Environ()) }

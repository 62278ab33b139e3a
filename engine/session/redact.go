package session

import (
	"strings"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
)

// redactVarArgs replaces the values of sensitive variables given with
// `-var NAME=VALUE` (or -var=NAME=VALUE, --var) in a command line by the
// mask placeholder, by the variable's name: the masker recognises a long
// secret anywhere in the text, but not a short one (a sensitive 42).
// Words are split at blanks: mask the command first, so that a secret
// of several words is masked whole before its first word is redacted.
func redactVarArgs(command string, cfg *lang.Config) string {
	if cfg == nil || !strings.Contains(command, "var") {
		return command
	}
	words := strings.Split(command, " ")
	changed := false
	for i, w := range words {
		arg, ok := "", false
		for _, flag := range []string{"-var=", "--var="} {
			if strings.HasPrefix(w, flag) {
				arg, ok = strings.TrimPrefix(w, flag), true
			}
		}
		if !ok && i > 0 && (words[i-1] == "-var" || words[i-1] == "--var") {
			arg, ok = w, true
		}
		name, _, isAssign := strings.Cut(arg, "=")
		if !ok || !isAssign {
			continue
		}
		if v, declared := cfg.Variables[strings.TrimSpace(name)]; declared && v.Sensitive {
			words[i] = w[:len(w)-len(arg)] + name + "=" + mask.Placeholder
			changed = true
		}
	}
	if !changed {
		return command
	}
	return strings.Join(words, " ")
}
